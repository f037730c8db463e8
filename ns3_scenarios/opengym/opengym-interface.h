// OpenGymInterface: the scenario's end of the ns3-gym compatible link to Python.
#ifndef IABMETA_OPENGYM_INTERFACE_H
#define IABMETA_OPENGYM_INTERFACE_H

#include "opengym-container.h"
#include "opengym-space.h"
#include "opengym-transport.h"

#include "ns3/callback.h"
#include "ns3/command-line.h"
#include "ns3/nstime.h"
#include "ns3/object.h"
#include "ns3/ptr.h"

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ns3
{

/**
 * Process exit codes used when the link to Python fails; the Python side reports them.
 */
enum OpenGymExitCode : int
{
    OPENGYM_EXIT_PEER_GONE = 4,      ///< no reply within RecvTimeout, or the parent process died
    OPENGYM_EXIT_PROTOCOL_ERROR = 5, ///< a message from Python did not parse, had the wrong
                                     ///< type or structure (an action not of the declared
                                     ///< space), or came in several ZeroMQ parts
};

/**
 * The scenario's end of the link. It connects to the Python end and follows the ns3-gym
 * sequence: SimInitMsg -> SimInitAck once, then for every step
 * EnvStateMsg -> EnvActMsg. Python answers a game-over state with stopSimReq=true; the
 * interface then calls Simulator::Stop() and ignores further notifications.
 *
 * Every receive has a wall-clock timeout (attribute RecvTimeout) and, while waiting, checks
 * that the parent process (the Python trainer) still exists: a scenario never hangs forever.
 *
 * The Endpoint attribute selects the transport (see OpenGymTransport): tcp://host:port and
 * ipc://path use a ZMQ REQ socket (ns3-gym compatible); unix://path uses a Unix stream socket
 * with length-prefixed frames carrying the same messages, faster for our own scenarios.
 */
class OpenGymInterface : public Object
{
  public:
    static TypeId GetTypeId();
    OpenGymInterface();
    ~OpenGymInterface() override;

    /// Shortcut for the Endpoint attribute "tcp://localhost:<port>".
    void SetPort(uint32_t port);
    void SetEndpoint(const std::string& endpoint);
    std::string GetEndpoint() const;
    /// The process whose disappearance ends the scenario (default: the parent at
    /// construction; OpenGymArguments passes the parent at program start).
    void SetParentPid(pid_t pid);

    void SetGetActionSpaceCb(Callback<Ptr<OpenGymSpace>> cb);
    void SetGetObservationSpaceCb(Callback<Ptr<OpenGymSpace>> cb);
    void SetGetGameOverCb(Callback<bool> cb);
    void SetGetObservationCb(Callback<Ptr<OpenGymDataContainer>> cb);
    void SetGetRewardCb(Callback<float> cb);
    void SetGetExtraInfoCb(Callback<std::string> cb);
    void SetExecuteActionsCb(Callback<bool, Ptr<OpenGymDataContainer>> cb);
    void SetContinueEpisodeCb(Callback<bool, uint64_t> cb);

    /// Connect and do the handshake (called by the first NotifyCurrentState if not before).
    void Init();
    /// Send the current state, block for the action and apply it (or stop on request).
    void NotifyCurrentState();
    /// Send the final state (reason SimulationEnd) unless Python already asked to stop.
    void NotifySimulationEnd();

    bool IsInitialized() const;
    /// True once Python answered with stopSimReq=true.
    bool IsStopRequested() const;
    /// Number of EnvStateMsg sent so far.
    uint64_t GetStateCount() const;

  protected:
    void DoDispose() override;

  private:
    void SendMessage(const google::protobuf::MessageLite& msg, const char* what);
    void ReceiveMessage(google::protobuf::MessageLite* msg, const char* what);
    void SendState(bool finalState);
    [[noreturn]] void Fail(OpenGymExitCode code, const std::string& message) const;

    std::string m_endpoint;
    Time m_recvTimeout;
    bool m_watchParent{true};

    std::unique_ptr<OpenGymTransport> m_transport;
    pid_t m_parentPid{0};
    bool m_initialized{false};
    bool m_stopRequested{false};
    bool m_simEndSent{false};
    uint64_t m_stateCount{0};

    // reused between steps to avoid allocations on the hot path
    std::unique_ptr<ns3opengym::EnvStateMsg> m_stateMsg;
    std::unique_ptr<ns3opengym::EnvActMsg> m_actMsg;
    /// the action space announced at the handshake: every action must have its structure
    std::unique_ptr<ns3opengym::SpaceDescription> m_actSpaceDesc;

    Callback<Ptr<OpenGymSpace>> m_actionSpaceCb;
    Callback<Ptr<OpenGymSpace>> m_observationSpaceCb;
    Callback<bool> m_gameOverCb;
    Callback<Ptr<OpenGymDataContainer>> m_observationCb;
    Callback<float> m_rewardCb;
    Callback<std::string> m_extraInfoCb;
    Callback<bool, Ptr<OpenGymDataContainer>> m_executeActionsCb;
    Callback<bool, uint64_t> m_continueEpisodeCb;
};

/**
 * The command-line flags every scenario accepts (ns3-gym convention plus ours):
 * --openGymPort=<port> (default 5555), --openGymEndpoint=<endpoint> (overrides the port:
 * ipc:///tmp/x for ZeroMQ over a Unix socket, unix:///tmp/y for the length-prefixed Unix stream
 * transport), --simSeed=<n> (ns-3 run number), --openGymTimeout=<seconds>.
 */
struct OpenGymArguments
{
    uint32_t openGymPort{5555};
    std::string openGymEndpoint;
    uint64_t simSeed{0};
    double openGymTimeoutS{600.0};
    /// The trainer process to watch: OPENGYM_PARENT_PID when the Python launcher set it,
    /// else the parent when main() starts (declare the arguments first). A scenario whose
    /// set-up takes seconds must not take a new parent (init, once the trainer has died
    /// meanwhile) for its own, or it would wait out the whole timeout as an orphan.
    pid_t parentPid{WatchedParentPid()};
    static pid_t WatchedParentPid();

    void AddToCommandLine(CommandLine& cmd);
    /// "tcp://localhost:<port>" unless --openGymEndpoint was given.
    std::string GetEndpoint() const;
    /// RngSeedManager::SetRun(simSeed).
    void ApplySeed() const;
    /// An OpenGymInterface configured with the endpoint and timeout.
    Ptr<OpenGymInterface> CreateInterface() const;
};

} // namespace ns3

#endif
