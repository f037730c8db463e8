// OpenGymInterface: the scenario's end of the ns3-gym compatible link to Python.
#include "opengym-interface.h"

#include "ns3/abort.h"
#include "ns3/double.h"
#include "ns3/log.h"
#include "ns3/rng-seed-manager.h"
#include "ns3/simulator.h"
#include "ns3/string.h"
#include "ns3/uinteger.h"
#include "ns3/boolean.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <iostream>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("OpenGymInterface");

NS_OBJECT_ENSURE_REGISTERED(OpenGymInterface);

namespace
{
/// Receive in slices of this length so a dead parent is noticed quickly.
constexpr int kRecvSliceMs = 500;
} // namespace

TypeId
OpenGymInterface::GetTypeId()
{
    static TypeId tid =
        TypeId("ns3::OpenGymInterface")
            .SetParent<Object>()
            .SetGroupName("OpenGym")
            .AddConstructor<OpenGymInterface>()
            .AddAttribute("Endpoint",
                          "Endpoint of the Python side: tcp://localhost:<port> or ipc://<path> "
                          "(ZeroMQ, ns3-gym compatible) or unix://<path> (length-prefixed frames "
                          "on a Unix stream socket)",
                          StringValue("tcp://localhost:5555"),
                          MakeStringAccessor(&OpenGymInterface::m_endpoint),
                          MakeStringChecker())
            .AddAttribute("RecvTimeout",
                          "Wall-clock time to wait for any reply from Python before exiting "
                          "with code 4",
                          TimeValue(Seconds(600)),
                          MakeTimeAccessor(&OpenGymInterface::m_recvTimeout),
                          MakeTimeChecker(MilliSeconds(1)))
            .AddAttribute("WatchParent",
                          "Exit (code 4) when the parent process disappears while waiting",
                          BooleanValue(true),
                          MakeBooleanAccessor(&OpenGymInterface::m_watchParent),
                          MakeBooleanChecker());
    return tid;
}

OpenGymInterface::OpenGymInterface()
    : m_parentPid(getppid()),
      m_stateMsg(std::make_unique<ns3opengym::EnvStateMsg>()),
      m_actMsg(std::make_unique<ns3opengym::EnvActMsg>())
{
    NS_LOG_FUNCTION(this);
}

OpenGymInterface::~OpenGymInterface()
{
    NS_LOG_FUNCTION(this);
    if (m_transport)
    {
        m_transport->Close();
    }
}

void
OpenGymInterface::DoDispose()
{
    NS_LOG_FUNCTION(this);
    if (m_transport)
    {
        m_transport->Close();
        m_transport.reset();
    }
    m_actionSpaceCb.Nullify();
    m_observationSpaceCb.Nullify();
    m_gameOverCb.Nullify();
    m_observationCb.Nullify();
    m_rewardCb.Nullify();
    m_extraInfoCb.Nullify();
    m_executeActionsCb.Nullify();
    Object::DoDispose();
}

void
OpenGymInterface::SetPort(uint32_t port)
{
    m_endpoint = "tcp://localhost:" + std::to_string(port);
}

void
OpenGymInterface::SetEndpoint(const std::string& endpoint)
{
    m_endpoint = endpoint;
}

std::string
OpenGymInterface::GetEndpoint() const
{
    return m_endpoint;
}

void
OpenGymInterface::SetParentPid(pid_t pid)
{
    m_parentPid = pid;
}

void
OpenGymInterface::SetGetActionSpaceCb(Callback<Ptr<OpenGymSpace>> cb)
{
    m_actionSpaceCb = cb;
}

void
OpenGymInterface::SetGetObservationSpaceCb(Callback<Ptr<OpenGymSpace>> cb)
{
    m_observationSpaceCb = cb;
}

void
OpenGymInterface::SetGetGameOverCb(Callback<bool> cb)
{
    m_gameOverCb = cb;
}

void
OpenGymInterface::SetGetObservationCb(Callback<Ptr<OpenGymDataContainer>> cb)
{
    m_observationCb = cb;
}

void
OpenGymInterface::SetGetRewardCb(Callback<float> cb)
{
    m_rewardCb = cb;
}

void
OpenGymInterface::SetGetExtraInfoCb(Callback<std::string> cb)
{
    m_extraInfoCb = cb;
}

void
OpenGymInterface::SetExecuteActionsCb(Callback<bool, Ptr<OpenGymDataContainer>> cb)
{
    m_executeActionsCb = cb;
}

void
OpenGymInterface::SetContinueEpisodeCb(Callback<bool, uint64_t> cb)
{
    m_continueEpisodeCb = cb;
}

bool
OpenGymInterface::IsInitialized() const
{
    return m_initialized;
}

bool
OpenGymInterface::IsStopRequested() const
{
    return m_stopRequested;
}

uint64_t
OpenGymInterface::GetStateCount() const
{
    return m_stateCount;
}

void
OpenGymInterface::Fail(OpenGymExitCode code, const std::string& message) const
{
    // std::cerr is unbuffered: the Python side reads this from our stderr tail
    std::cerr << "OpenGymInterface (" << m_endpoint << "): " << message << std::endl;
    std::exit(code);
}

void
OpenGymInterface::SendMessage(const google::protobuf::MessageLite& msg, const char* what)
{
    std::string error;
    if (!m_transport->Send(msg, &error))
    {
        Fail(OPENGYM_EXIT_PEER_GONE, std::string("sending ") + what + ": " + error);
    }
}

void
OpenGymInterface::ReceiveMessage(google::protobuf::MessageLite* msg, const char* what)
{
    using Clock = std::chrono::steady_clock;
    const auto timeout = std::chrono::milliseconds(m_recvTimeout.GetMilliSeconds());
    const auto deadline = Clock::now() + timeout;
    const uint8_t* data = nullptr;
    size_t size = 0;
    std::string error;
    while (true)
    {
        const auto status = m_transport->Receive(&data, &size, &error);
        if (status == OpenGymTransport::RecvStatus::FRAME)
        {
            break;
        }
        if (status == OpenGymTransport::RecvStatus::INVALID)
        {
            Fail(OPENGYM_EXIT_PROTOCOL_ERROR,
                 std::string("while waiting for ") + what + ": " + error);
        }
        if (status == OpenGymTransport::RecvStatus::ERROR)
        {
            Fail(OPENGYM_EXIT_PEER_GONE, std::string("receive ") + what + " failed: " + error);
        }
        if (m_watchParent && getppid() != m_parentPid)
        {
            Fail(OPENGYM_EXIT_PEER_GONE,
                 std::string("parent process ") + std::to_string(m_parentPid) +
                     " is gone while waiting for " + what + "; exiting");
        }
        if (Clock::now() >= deadline)
        {
            Fail(OPENGYM_EXIT_PEER_GONE,
                 std::string("no ") + what + " from Python within " +
                     std::to_string(m_recvTimeout.GetSeconds()) +
                     " s (RecvTimeout / --openGymTimeout); exiting");
        }
    }
    if (!msg->ParseFromArray(data, static_cast<int>(size)))
    {
        Fail(OPENGYM_EXIT_PROTOCOL_ERROR,
             std::string("received ") + std::to_string(size) + " bytes that do not parse as " +
                 what);
    }
}

void
OpenGymInterface::Init()
{
    NS_LOG_FUNCTION(this);
    if (m_initialized)
    {
        return;
    }
    NS_ABORT_MSG_IF(m_observationSpaceCb.IsNull() || m_actionSpaceCb.IsNull(),
                    "OpenGymInterface::Init: set the observation and action space callbacks");
    const int sliceMs =
        static_cast<int>(std::min<int64_t>(kRecvSliceMs, m_recvTimeout.GetMilliSeconds()));
    const int sendTimeoutMs =
        static_cast<int>(std::min<int64_t>(m_recvTimeout.GetMilliSeconds(), 1 << 30));
    m_transport = OpenGymTransport::Create(m_endpoint);
    NS_LOG_INFO("connecting to " << m_endpoint);
    std::string error;
    if (!m_transport->Connect(sliceMs, sendTimeoutMs, &error))
    {
        Fail(OPENGYM_EXIT_PEER_GONE, error);
    }

    ns3opengym::SimInitMsg init;
    init.set_simprocessid(static_cast<uint64_t>(getpid()));
    init.set_wafshellprocessid(static_cast<uint64_t>(getppid()));
    Ptr<OpenGymSpace> obsSpace = m_observationSpaceCb();
    Ptr<OpenGymSpace> actSpace = m_actionSpaceCb();
    NS_ABORT_MSG_IF(!obsSpace || !actSpace, "OpenGymInterface::Init: a space callback gave null");
    obsSpace->FillSpaceDescription(init.mutable_obsspace());
    actSpace->FillSpaceDescription(init.mutable_actspace());
    m_actSpaceDesc = std::make_unique<ns3opengym::SpaceDescription>(init.actspace());
    NS_LOG_INFO("observation space " << obsSpace << ", action space " << actSpace);
    SendMessage(init, "SimInitMsg");

    ns3opengym::SimInitAck ack;
    ReceiveMessage(&ack, "SimInitAck");
    m_initialized = true;
    if (ack.stopsimreq())
    {
        NS_LOG_INFO("Python asked to stop at the handshake");
        m_stopRequested = true;
        Simulator::Stop();
    }
}

void
OpenGymInterface::SendState(bool finalState)
{
    NS_ABORT_MSG_IF(m_observationCb.IsNull(), "OpenGymInterface: no GetObservation callback");
    auto& state = *m_stateMsg;
    state.Clear();
    Ptr<OpenGymDataContainer> obs = m_observationCb();
    NS_ABORT_MSG_IF(!obs, "OpenGymInterface: the GetObservation callback gave null");
    obs->FillDataContainer(state.mutable_obsdata());
    state.set_reward(m_rewardCb.IsNull() ? 0.0F : m_rewardCb());
    const bool gameOver = finalState || (!m_gameOverCb.IsNull() && m_gameOverCb());
    state.set_isgameover(gameOver);
    state.set_reason(finalState ? ns3opengym::EnvStateMsg::SimulationEnd
                                : (gameOver ? ns3opengym::EnvStateMsg::GameOver
                                            : ns3opengym::EnvStateMsg::SimulationEnd));
    if (!m_extraInfoCb.IsNull())
    {
        state.set_info(m_extraInfoCb());
    }
    SendMessage(state, "EnvStateMsg");
    ++m_stateCount;
}

void
OpenGymInterface::NotifyCurrentState()
{
    NS_LOG_FUNCTION(this);
    if (!m_initialized)
    {
        Init();
    }
    if (m_stopRequested || m_simEndSent)
    {
        return;
    }
    SendState(false);
    auto& act = *m_actMsg;
    act.Clear();
    ReceiveMessage(&act, "EnvActMsg");
    if (act.stopsimreq())
    {
        NS_LOG_INFO("Python requested stop after " << m_stateCount << " states");
        m_stopRequested = true;
        Simulator::Stop();
        return;
    }
    if (act.has_continueepisode())
    {
        const uint64_t seed = act.continueepisode().episodeseed();
        if (m_continueEpisodeCb.IsNull() || !m_continueEpisodeCb(seed))
        {
            Fail(OPENGYM_EXIT_PROTOCOL_ERROR,
                 "EnvActMsg.continueEpisode (episode seed " + std::to_string(seed) +
                     ") is not supported by this scenario in this state");
        }
        return;
    }
    if (!act.has_actdata())
    {
        Fail(OPENGYM_EXIT_PROTOCOL_ERROR,
             "EnvActMsg has no actData, no stopSimReq and no continueEpisode");
    }
    std::string error;
    if (!OpenGymDataContainer::CheckAgainstSpace(act.actdata(), *m_actSpaceDesc, "EnvActMsg.actData",
                                                 &error))
    {
        Fail(OPENGYM_EXIT_PROTOCOL_ERROR,
             "the action does not have the structure of the declared action space: " + error);
    }
    Ptr<OpenGymDataContainer> action =
        OpenGymDataContainer::CreateFromDataContainer(act.actdata(), &error);
    if (!action)
    {
        Fail(OPENGYM_EXIT_PROTOCOL_ERROR, error);
    }
    if (!m_executeActionsCb.IsNull() && !m_executeActionsCb(action))
    {
        NS_LOG_WARN("ExecuteActions rejected action " << action);
    }
}

void
OpenGymInterface::NotifySimulationEnd()
{
    NS_LOG_FUNCTION(this);
    if (!m_initialized || m_stopRequested || m_simEndSent)
    {
        return;
    }
    SendState(true);
    m_simEndSent = true;
    auto& act = *m_actMsg;
    act.Clear();
    ReceiveMessage(&act, "EnvActMsg");
    m_stopRequested = act.stopsimreq();
}

// ---- command line ---------------------------------------------------------------------------

void
OpenGymArguments::AddToCommandLine(CommandLine& cmd)
{
    cmd.AddValue("openGymPort", "TCP port of the Python REP socket on localhost", openGymPort);
    cmd.AddValue("openGymEndpoint",
                 "endpoint of the Python side (overrides openGymPort): ipc:///tmp/sock "
                 "(ZeroMQ) or unix:///tmp/sock (length-prefixed Unix stream socket)",
                 openGymEndpoint);
    cmd.AddValue("simSeed", "ns-3 run number (RngSeedManager::SetRun)", simSeed);
    cmd.AddValue("openGymTimeout",
                 "seconds to wait for Python before giving up (exit code 4)",
                 openGymTimeoutS);
}

pid_t
OpenGymArguments::WatchedParentPid()
{
    if (const char* value = std::getenv("OPENGYM_PARENT_PID"))
    {
        char* end = nullptr;
        const long pid = std::strtol(value, &end, 10);
        if (end != value && *end == '\0' && pid > 0)
        {
            return static_cast<pid_t>(pid);
        }
    }
    return getppid();
}

std::string
OpenGymArguments::GetEndpoint() const
{
    if (!openGymEndpoint.empty())
    {
        return openGymEndpoint;
    }
    return "tcp://localhost:" + std::to_string(openGymPort);
}

void
OpenGymArguments::ApplySeed() const
{
    RngSeedManager::SetRun(simSeed);
}

Ptr<OpenGymInterface>
OpenGymArguments::CreateInterface() const
{
    NS_ABORT_MSG_IF(!(openGymTimeoutS > 0),
                    "--openGymTimeout=" << openGymTimeoutS << ", expected a positive number");
    auto openGymInterface = CreateObject<OpenGymInterface>();
    openGymInterface->SetParentPid(parentPid);
    openGymInterface->SetAttribute("Endpoint", StringValue(GetEndpoint()));
    openGymInterface->SetAttribute("RecvTimeout", TimeValue(Seconds(openGymTimeoutS)));
    return openGymInterface;
}

} // namespace ns3
