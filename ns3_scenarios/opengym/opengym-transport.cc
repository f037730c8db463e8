// OpenGymTransport: how the scenario's protobuf messages travel to Python (ZeroMQ or Unix socket).
#include "opengym-transport.h"

#include "ns3/log.h"

#include <google/protobuf/message_lite.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <zmq.hpp>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("OpenGymTransport");

namespace
{

constexpr const char* kUnixScheme = "unix://";
constexpr size_t kHeaderBytes = 4;
/// Initial receive buffer: every message of the echo and IAB scenarios fits.
constexpr size_t kInitialRecvBytes = 64 * 1024;
/// How long Connect retries when the Python end is not listening yet.
constexpr int kUnixConnectRetryMs = 2000;

std::string
ErrnoText(int err)
{
    return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

struct timeval
ToTimeval(int ms)
{
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

void
PutLength(uint8_t* out, uint32_t length)
{
    // little-endian, independent of the host byte order
    out[0] = static_cast<uint8_t>(length);
    out[1] = static_cast<uint8_t>(length >> 8);
    out[2] = static_cast<uint8_t>(length >> 16);
    out[3] = static_cast<uint8_t>(length >> 24);
}

uint32_t
GetLength(const uint8_t* in)
{
    return static_cast<uint32_t>(in[0]) | (static_cast<uint32_t>(in[1]) << 8) |
           (static_cast<uint32_t>(in[2]) << 16) | (static_cast<uint32_t>(in[3]) << 24);
}

} // namespace

std::unique_ptr<OpenGymTransport>
OpenGymTransport::Create(const std::string& endpoint)
{
    if (endpoint.rfind(kUnixScheme, 0) == 0)
    {
        return std::make_unique<UnixStreamOpenGymTransport>(endpoint);
    }
    return std::make_unique<ZmqOpenGymTransport>(endpoint);
}

// ---- ZeroMQ ---------------------------------------------------------------------------------

ZmqOpenGymTransport::ZmqOpenGymTransport(const std::string& endpoint)
    : m_endpoint(endpoint),
      m_frame(std::make_unique<zmq::message_t>())
{
}

ZmqOpenGymTransport::~ZmqOpenGymTransport()
{
    Close();
}

bool
ZmqOpenGymTransport::Connect(int recvSliceMs, int sendTimeoutMs, std::string* error)
{
    try
    {
        m_context = std::make_unique<zmq::context_t>(1);
        m_socket = std::make_unique<zmq::socket_t>(*m_context, zmq::socket_type::req);
        m_socket->set(zmq::sockopt::linger, 0);
        m_socket->set(zmq::sockopt::rcvtimeo, recvSliceMs);
        m_socket->set(zmq::sockopt::sndtimeo, sendTimeoutMs);
        m_socket->connect(m_endpoint);
    }
    catch (const zmq::error_t& err)
    {
        *error = "cannot connect to " + m_endpoint + ": " + err.what();
        return false;
    }
    return true;
}

bool
ZmqOpenGymTransport::Send(const google::protobuf::MessageLite& msg, std::string* error)
{
    const size_t size = msg.ByteSizeLong();
    zmq::message_t frame(size);
    if (!msg.SerializeWithCachedSizesToArray(static_cast<uint8_t*>(frame.data())))
    {
        *error = "could not serialize " + msg.GetTypeName();
        return false;
    }
    try
    {
        if (!m_socket->send(frame, zmq::send_flags::none))
        {
            *error = "timed out sending " + msg.GetTypeName() + " (is the Python side gone?)";
            return false;
        }
    }
    catch (const zmq::error_t& err)
    {
        *error = "send " + msg.GetTypeName() + " failed: " + err.what();
        return false;
    }
    return true;
}

OpenGymTransport::RecvStatus
ZmqOpenGymTransport::Receive(const uint8_t** data, size_t* size, std::string* error)
{
    try
    {
        if (!m_socket->recv(*m_frame, zmq::recv_flags::none))
        {
            return RecvStatus::TIMEOUT;
        }
    }
    catch (const zmq::error_t& err)
    {
        if (err.num() == EINTR)
        {
            return RecvStatus::TIMEOUT;
        }
        *error = std::string("receive failed: ") + err.what();
        return RecvStatus::ERROR;
    }
    if (m_frame->more())
    {
        // ns3-gym's messages are single-part: count the other parts (a multipart message
        // arrives whole, so they are there at once) and refuse the message
        size_t parts = 1;
        zmq::message_t rest;
        try
        {
            bool more = true;
            while (more && m_socket->recv(rest, zmq::recv_flags::dontwait))
            {
                ++parts;
                more = rest.more();
            }
        }
        catch (const zmq::error_t&)
        {
        }
        *error = "a ZeroMQ message of " + std::to_string(parts) +
                 " parts, expected a single-part ns3opengym message";
        return RecvStatus::INVALID;
    }
    *data = static_cast<const uint8_t*>(m_frame->data());
    *size = m_frame->size();
    return RecvStatus::FRAME;
}

void
ZmqOpenGymTransport::Close()
{
    if (m_socket)
    {
        m_socket->close();
        m_socket.reset();
    }
    m_context.reset();
}

std::string
ZmqOpenGymTransport::GetEndpoint() const
{
    return m_endpoint;
}

// ---- Unix stream socket ---------------------------------------------------------------------

UnixStreamOpenGymTransport::UnixStreamOpenGymTransport(const std::string& endpoint)
    : m_endpoint(endpoint),
      m_path(endpoint.substr(std::strlen(kUnixScheme))),
      m_recvBuffer(kInitialRecvBytes)
{
}

UnixStreamOpenGymTransport::~UnixStreamOpenGymTransport()
{
    Close();
}

bool
UnixStreamOpenGymTransport::Connect(int recvSliceMs, int sendTimeoutMs, std::string* error)
{
    struct sockaddr_un address;
    std::memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    if (m_path.empty() || m_path.size() >= sizeof(address.sun_path))
    {
        *error = "endpoint " + m_endpoint + ": the socket path must have 1 to " +
                 std::to_string(sizeof(address.sun_path) - 1) + " bytes";
        return false;
    }
    std::memcpy(address.sun_path, m_path.c_str(), m_path.size());

    // Python listens before it starts the scenario, so the first attempt normally succeeds;
    // the short retry covers a scenario started by hand just before its Python end.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kUnixConnectRetryMs);
    while (true)
    {
        m_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (m_fd < 0)
        {
            *error = "socket(AF_UNIX) failed: " + ErrnoText(errno);
            return false;
        }
        if (connect(m_fd, reinterpret_cast<struct sockaddr*>(&address), sizeof(address)) == 0)
        {
            break;
        }
        const int err = errno;
        close(m_fd);
        m_fd = -1;
        const bool retry = err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == EINTR;
        if (!retry || std::chrono::steady_clock::now() >= deadline)
        {
            *error = "cannot connect to " + m_endpoint + ": " + ErrnoText(err);
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Blocking socket with kernel timeouts: a receive is a single recv() call, and a slice
    // expiring returns EAGAIN so the caller can check its parent and deadline.
    const struct timeval recvTimeout = ToTimeval(std::max(1, recvSliceMs));
    const struct timeval sendTimeout = ToTimeval(std::max(1, sendTimeoutMs));
    if (setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &recvTimeout, sizeof(recvTimeout)) != 0 ||
        setsockopt(m_fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, sizeof(sendTimeout)) != 0)
    {
        *error = "setsockopt(SO_RCVTIMEO/SO_SNDTIMEO) failed: " + ErrnoText(errno);
        Close();
        return false;
    }
    NS_LOG_INFO("connected to " << m_endpoint);
    return true;
}

bool
UnixStreamOpenGymTransport::Send(const google::protobuf::MessageLite& msg, std::string* error)
{
    const size_t size = msg.ByteSizeLong();
    if (size > MAX_FRAME_BYTES)
    {
        *error = msg.GetTypeName() + " has " + std::to_string(size) + " bytes, more than the " +
                 std::to_string(MAX_FRAME_BYTES) + " a frame may carry";
        return false;
    }
    m_sendBuffer.resize(kHeaderBytes + size);
    PutLength(m_sendBuffer.data(), static_cast<uint32_t>(size));
    if (!msg.SerializeWithCachedSizesToArray(m_sendBuffer.data() + kHeaderBytes))
    {
        *error = "could not serialize " + msg.GetTypeName();
        return false;
    }
    size_t sent = 0;
    while (sent < m_sendBuffer.size())
    {
        // MSG_NOSIGNAL: a vanished reader gives EPIPE instead of killing us with SIGPIPE
        const ssize_t n =
            send(m_fd, m_sendBuffer.data() + sent, m_sendBuffer.size() - sent, MSG_NOSIGNAL);
        if (n >= 0)
        {
            sent += static_cast<size_t>(n);
            continue;
        }
        const int err = errno;
        if (err == EINTR)
        {
            continue;
        }
        if (err == EAGAIN || err == EWOULDBLOCK)
        {
            *error = "timed out sending " + msg.GetTypeName() + " (is the Python side gone?)";
        }
        else
        {
            *error = "send " + msg.GetTypeName() + " failed: " + ErrnoText(err);
        }
        return false;
    }
    return true;
}

void
UnixStreamOpenGymTransport::ConsumeLastFrame()
{
    if (m_lastFrameEnd == 0)
    {
        return;
    }
    // in lock step nothing follows a frame, so this is normally just a reset
    const size_t rest = m_recvFilled - m_lastFrameEnd;
    if (rest > 0)
    {
        std::memmove(m_recvBuffer.data(), m_recvBuffer.data() + m_lastFrameEnd, rest);
    }
    m_recvFilled = rest;
    m_lastFrameEnd = 0;
}

OpenGymTransport::RecvStatus
UnixStreamOpenGymTransport::Receive(const uint8_t** data, size_t* size, std::string* error)
{
    if (m_fd < 0)
    {
        *error = "receive on a closed socket";
        return RecvStatus::ERROR;
    }
    ConsumeLastFrame();
    while (true)
    {
        if (m_recvFilled >= kHeaderBytes)
        {
            const uint32_t length = GetLength(m_recvBuffer.data());
            if (length > MAX_FRAME_BYTES)
            {
                *error = "frame length prefix " + std::to_string(length) + " exceeds the limit of " +
                         std::to_string(MAX_FRAME_BYTES) + " bytes";
                return RecvStatus::INVALID;
            }
            const size_t frameEnd = kHeaderBytes + length;
            if (m_recvFilled >= frameEnd)
            {
                *data = m_recvBuffer.data() + kHeaderBytes;
                *size = length;
                m_lastFrameEnd = frameEnd;
                return RecvStatus::FRAME;
            }
            if (m_recvBuffer.size() < frameEnd)
            {
                m_recvBuffer.resize(frameEnd);
            }
        }
        const ssize_t n =
            recv(m_fd, m_recvBuffer.data() + m_recvFilled, m_recvBuffer.size() - m_recvFilled, 0);
        if (n > 0)
        {
            m_recvFilled += static_cast<size_t>(n);
            continue;
        }
        if (n == 0)
        {
            *error = "Python closed the connection";
            if (m_recvFilled > 0)
            {
                *error += " in the middle of a frame (" + std::to_string(m_recvFilled) +
                          " bytes received)";
            }
            return RecvStatus::ERROR;
        }
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
        {
            return RecvStatus::TIMEOUT;
        }
        *error = "receive failed: " + ErrnoText(err);
        return RecvStatus::ERROR;
    }
}

void
UnixStreamOpenGymTransport::Close()
{
    if (m_fd >= 0)
    {
        close(m_fd);
        m_fd = -1;
    }
}

std::string
UnixStreamOpenGymTransport::GetEndpoint() const
{
    return m_endpoint;
}

} // namespace ns3
