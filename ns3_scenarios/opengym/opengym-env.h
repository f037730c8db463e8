// OpenGymEnv: base class for a scenario's gym environment, wired to an OpenGymInterface.
#ifndef IABMETA_OPENGYM_ENV_H
#define IABMETA_OPENGYM_ENV_H

#include "opengym-container.h"
#include "opengym-interface.h"
#include "opengym-space.h"

#include "ns3/object.h"
#include "ns3/ptr.h"

#include <string>

namespace ns3
{

/**
 * Subclass it, implement the seven hooks, call SetOpenGymInterface() once and Notify() at
 * every agent step (e.g. from a scheduled event), NotifySimulationEnd() after Run().
 */
class OpenGymEnv : public Object
{
  public:
    static TypeId GetTypeId();
    OpenGymEnv();
    ~OpenGymEnv() override;

    virtual Ptr<OpenGymSpace> GetActionSpace() = 0;
    virtual Ptr<OpenGymSpace> GetObservationSpace() = 0;
    virtual bool GetGameOver() = 0;
    virtual Ptr<OpenGymDataContainer> GetObservation() = 0;
    virtual float GetReward() = 0;
    virtual std::string GetExtraInfo() = 0;
    virtual bool ExecuteActions(Ptr<OpenGymDataContainer> action) = 0;
    /// Answer to EnvActMsg.continueEpisode (our extension): start a new episode with this
    /// seed, the next state being its first. Default: unsupported (false; the interface
    /// then exits with a protocol error).
    virtual bool ContinueEpisode(uint64_t episodeSeed);

    /// Register this environment's hooks as the interface's callbacks.
    void SetOpenGymInterface(Ptr<OpenGymInterface> openGymInterface);
    Ptr<OpenGymInterface> GetOpenGymInterface() const;
    /// Send the current state to Python and apply its action.
    void Notify();
    void NotifySimulationEnd();

  protected:
    void DoDispose() override;

    Ptr<OpenGymInterface> m_openGymInterface;
};

} // namespace ns3

#endif
