// OpenGymEnv: base class for a scenario's gym environment, wired to an OpenGymInterface.
#include "opengym-env.h"

#include "ns3/log.h"

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("OpenGymEnv");

NS_OBJECT_ENSURE_REGISTERED(OpenGymEnv);

TypeId
OpenGymEnv::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymEnv").SetParent<Object>().SetGroupName("OpenGym");
    return tid;
}

OpenGymEnv::OpenGymEnv()
{
    NS_LOG_FUNCTION(this);
}

OpenGymEnv::~OpenGymEnv()
{
    NS_LOG_FUNCTION(this);
}

void
OpenGymEnv::DoDispose()
{
    NS_LOG_FUNCTION(this);
    if (m_openGymInterface)
    {
        m_openGymInterface->Dispose();
        m_openGymInterface = nullptr;
    }
    Object::DoDispose();
}

void
OpenGymEnv::SetOpenGymInterface(Ptr<OpenGymInterface> openGymInterface)
{
    NS_LOG_FUNCTION(this << openGymInterface);
    m_openGymInterface = openGymInterface;
    openGymInterface->SetGetActionSpaceCb(MakeCallback(&OpenGymEnv::GetActionSpace, this));
    openGymInterface->SetGetObservationSpaceCb(
        MakeCallback(&OpenGymEnv::GetObservationSpace, this));
    openGymInterface->SetGetGameOverCb(MakeCallback(&OpenGymEnv::GetGameOver, this));
    openGymInterface->SetGetObservationCb(MakeCallback(&OpenGymEnv::GetObservation, this));
    openGymInterface->SetGetRewardCb(MakeCallback(&OpenGymEnv::GetReward, this));
    openGymInterface->SetGetExtraInfoCb(MakeCallback(&OpenGymEnv::GetExtraInfo, this));
    openGymInterface->SetExecuteActionsCb(MakeCallback(&OpenGymEnv::ExecuteActions, this));
    openGymInterface->SetContinueEpisodeCb(MakeCallback(&OpenGymEnv::ContinueEpisode, this));
}

bool
OpenGymEnv::ContinueEpisode(uint64_t /* episodeSeed */)
{
    return false;
}

Ptr<OpenGymInterface>
OpenGymEnv::GetOpenGymInterface() const
{
    return m_openGymInterface;
}

void
OpenGymEnv::Notify()
{
    NS_LOG_FUNCTION(this);
    if (m_openGymInterface)
    {
        m_openGymInterface->NotifyCurrentState();
    }
}

void
OpenGymEnv::NotifySimulationEnd()
{
    NS_LOG_FUNCTION(this);
    if (m_openGymInterface)
    {
        m_openGymInterface->NotifySimulationEnd();
    }
}

} // namespace ns3
