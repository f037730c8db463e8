// OpenGymTransport: how the scenario's protobuf messages travel to Python (ZeroMQ or Unix socket).
#ifndef IABMETA_OPENGYM_TRANSPORT_H
#define IABMETA_OPENGYM_TRANSPORT_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace google
{
namespace protobuf
{
class MessageLite;
} // namespace protobuf
} // namespace google

namespace zmq
{
class context_t;
class socket_t;
class message_t;
} // namespace zmq

namespace ns3
{

/**
 * One connected link to the Python side that carries whole protobuf messages in lock step.
 *
 * Two kinds exist, chosen by the endpoint:
 * - ZeroMQ REQ (tcp://..., ipc://...): ns3-gym's wire protocol, the default.
 * - unix://<path>: an AF_UNIX stream socket with a 4-byte little-endian length before every
 *   message. Same messages in the same order, but no ZeroMQ I/O threads: one system call per
 *   send and usually one per receive, which matters when both processes share one CPU.
 *
 * A transport never exits the process itself: errors are returned with a description and
 * the OpenGymInterface decides (it exits with a documented code).
 */
class OpenGymTransport
{
  public:
    /// What a Receive call produced.
    enum class RecvStatus
    {
        FRAME,   ///< one whole message is available through the out-parameters
        TIMEOUT, ///< nothing arrived within the receive slice; call again
        ERROR,   ///< the link is broken (the error string says how)
        INVALID, ///< the peer sent something that is not a frame (e.g. an absurd length)
    };

    virtual ~OpenGymTransport() = default;

    /**
     * Transport for @p endpoint: unix://<path> gives the Unix stream transport, anything else
     * (tcp://, ipc://) ZeroMQ.
     */
    static std::unique_ptr<OpenGymTransport> Create(const std::string& endpoint);

    /**
     * Connect to the Python end.
     * @param recvSliceMs longest time one Receive call blocks
     * @param sendTimeoutMs longest time one Send call blocks
     * @param error set on failure
     * @return true on success
     */
    virtual bool Connect(int recvSliceMs, int sendTimeoutMs, std::string* error) = 0;

    /// Serialize @p msg and send it as one frame; false and @p error on failure.
    virtual bool Send(const google::protobuf::MessageLite& msg, std::string* error) = 0;

    /**
     * Wait up to the receive slice for one frame. On FRAME, @p data and @p size describe the
     * payload, valid until the next call on this transport.
     */
    virtual RecvStatus Receive(const uint8_t** data, size_t* size, std::string* error) = 0;

    /// Close the link (idempotent).
    virtual void Close() = 0;

    /// The endpoint this transport connects to.
    virtual std::string GetEndpoint() const = 0;
};

/// The ZeroMQ REQ end of ns3-gym's protocol.
class ZmqOpenGymTransport : public OpenGymTransport
{
  public:
    explicit ZmqOpenGymTransport(const std::string& endpoint);
    ~ZmqOpenGymTransport() override;

    bool Connect(int recvSliceMs, int sendTimeoutMs, std::string* error) override;
    bool Send(const google::protobuf::MessageLite& msg, std::string* error) override;
    RecvStatus Receive(const uint8_t** data, size_t* size, std::string* error) override;
    void Close() override;
    std::string GetEndpoint() const override;

  private:
    std::string m_endpoint;
    std::unique_ptr<zmq::context_t> m_context;
    std::unique_ptr<zmq::socket_t> m_socket;
    std::unique_ptr<zmq::message_t> m_frame; ///< last received message
};

/**
 * An AF_UNIX stream socket with length-prefixed frames (unix://<path>). Python listens,
 * the scenario connects.
 */
class UnixStreamOpenGymTransport : public OpenGymTransport
{
  public:
    /// Largest frame accepted in either direction (a larger length prefix is a protocol error).
    static constexpr uint32_t MAX_FRAME_BYTES = 256U << 20;

    /// @param endpoint unix://<path>
    explicit UnixStreamOpenGymTransport(const std::string& endpoint);
    ~UnixStreamOpenGymTransport() override;

    bool Connect(int recvSliceMs, int sendTimeoutMs, std::string* error) override;
    bool Send(const google::protobuf::MessageLite& msg, std::string* error) override;
    RecvStatus Receive(const uint8_t** data, size_t* size, std::string* error) override;
    void Close() override;
    std::string GetEndpoint() const override;

  private:
    /// Drop the frame handed out by the previous Receive from the buffer.
    void ConsumeLastFrame();

    std::string m_endpoint;
    std::string m_path;
    int m_fd{-1};
    std::vector<uint8_t> m_sendBuffer;
    std::vector<uint8_t> m_recvBuffer;
    size_t m_recvFilled{0};   ///< bytes of m_recvBuffer holding received data
    size_t m_lastFrameEnd{0}; ///< end of the frame handed out by the last Receive
};

} // namespace ns3

#endif
