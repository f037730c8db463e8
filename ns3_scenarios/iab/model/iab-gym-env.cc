// IabGymEnv: the IAB network behind the OpenGym interface, one agent step per frame.
#include "iab-gym-env.h"

#include "iab-channel-model.h"

#include "ns3/log.h"
#include "ns3/simulator.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("IabGymEnv");
NS_OBJECT_ENSURE_REGISTERED(IabGymEnv);

TypeId
IabGymEnv::GetTypeId()
{
    static TypeId tid = TypeId("ns3::IabGymEnv")
                            .SetParent<OpenGymEnv>()
                            .SetGroupName("Iab")
                            .AddConstructor<IabGymEnv>();
    return tid;
}

IabGymEnv::IabGymEnv() = default;

IabGymEnv::~IabGymEnv() = default;

void
IabGymEnv::DoDispose()
{
    if (m_gains)
    {
        m_gains->Dispose();
    }
    m_gains = nullptr;
    m_network = nullptr;
    OpenGymEnv::DoDispose();
}

void
IabGymEnv::Setup(const IabScenarioInstance& instance, int64_t episodeSeed)
{
    NS_LOG_FUNCTION(this << episodeSeed);
    const auto t0 = std::chrono::steady_clock::now();
    m_inst = instance;
    m_gains = CreateObject<IabLinkGainModel>();
    m_gains->Install(instance);
    m_network = CreateObject<IabNetwork>();
    m_network->Install(instance, m_gains);
    m_network->Reset(episodeSeed);
    m_setupS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    NS_LOG_INFO("set up in " << m_setupS << " s");
}

void
IabGymEnv::Start()
{
    Simulator::ScheduleNow(&IabGymEnv::StartFrame, this);
}

Ptr<OpenGymSpace>
IabGymEnv::GetObservationSpace()
{
    const uint32_t choices = m_network->GetNumChoices();
    auto space = CreateObject<OpenGymDictSpace>();
    space->Add("obs",
               CreateObject<OpenGymBoxSpace>(-INFINITY,
                                             INFINITY,
                                             std::vector<uint32_t>{m_network->GetObservationSize()},
                                             ns3opengym::FLOAT));
    space->Add("action_mask",
               CreateObject<OpenGymBoxSpace>(0.0F,
                                             1.0F,
                                             std::vector<uint32_t>{m_network->GetActionSize(),
                                                                   choices},
                                             ns3opengym::UINT));
    return space;
}

Ptr<OpenGymSpace>
IabGymEnv::GetActionSpace()
{
    return CreateObject<OpenGymBoxSpace>(0.0F,
                                         static_cast<float>(m_network->GetNumChoices() - 1),
                                         std::vector<uint32_t>{m_network->GetActionSize()},
                                         ns3opengym::INT);
}

bool
IabGymEnv::GetGameOver()
{
    return m_network->IsEpisodeOver();
}

Ptr<OpenGymDataContainer>
IabGymEnv::GetObservation()
{
    auto obs = CreateObject<OpenGymBoxContainer<float>>(
        std::vector<uint32_t>{m_network->GetObservationSize()});
    obs->SetData(m_network->GetObservation());
    auto mask = CreateObject<OpenGymBoxContainer<uint32_t>>(
        std::vector<uint32_t>{m_network->GetActionSize(), m_network->GetNumChoices()});
    mask->SetData(m_network->GetActionMask());
    auto dict = CreateObject<OpenGymDictContainer>();
    dict->Add("obs", obs);
    dict->Add("action_mask", mask);
    return dict;
}

float
IabGymEnv::GetReward()
{
    return static_cast<float>(m_network->GetLastFrame().reward);
}

std::string
IabGymEnv::GetExtraInfo()
{
    const IabFrameResult& res = m_network->GetLastFrame();
    nlohmann::json info;
    info["frame"] = m_network->GetFrame();
    info["episode_seed"] = m_network->GetEpisodeSeed();
    info["reward"] = res.reward;
    if (m_network->GetFrame() > 0)
    {
        info["delivered_bytes"] = res.deliveredBytes;
        info["dropped_bytes"] = res.droppedBytes;
        info["arrived_bytes"] = res.arrivedBytes;
        info["sinr_violations"] = res.sinrViolations;
        info["half_duplex_conflicts"] = res.halfDuplexConflicts;
        info["invalid_actions"] = res.invalidActions;
        info["incumbent_collisions"] = res.incumbentCollisions;
        info["scheduled"] = res.scheduled;
        info["delivered_bytes_bs"] = res.deliveredBytesBs;
        info["sinr_violations_bs"] = res.sinrViolationsBs;
        info["scheduled_bs"] = res.scheduledBs;
        info["reward_bs"] = res.rewardBs;
        nlohmann::json sinr = nlohmann::json::array();
        for (double v : res.sinrDb)
        {
            sinr.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr));
        }
        info["sinr_db"] = sinr;
        info["allocation"] = res.allocation;
    }
    if (m_firstState)
    {
        m_firstState = false;
        const auto [chosenDb, otherDb] = m_gains->GetSelfTestGainsDb();
        info["startup"] = {{"deterministic", m_inst.deterministic},
                           {"beam_convention", m_gains->GetBeamConvention()},
                           {"self_test_gain_db", chosenDb},
                           {"self_test_other_db", otherDb},
                           {"setup_s", m_setupS}};
    }
    if (m_network->IsEpisodeOver())
    {
        info["episode"] = nlohmann::json::parse(m_network->GetEpisodeJson());
        info["channel_refreshes"] = m_gains->GetChannelRefreshCount();
        const auto [geometryS, refreshS] = m_gains->GetComputeSeconds();
        info["compute_s"] = {{"geometry", geometryS}, {"signal_refresh", refreshS}};
        info["channel_matrices"] = {{"generated", IabThreeGppChannelModel::GetGeneratedCount()},
                                    {"verified", IabThreeGppChannelModel::GetVerifiedCount()}};
        const auto [bandGains, bandGainsVerified] =
            IabSpectrumPropagationLossModel::GetBandGainCounts();
        info["band_gains"] = {{"computed", bandGains}, {"verified", bandGainsVerified}};
    }
    return info.dump();
}

bool
IabGymEnv::ExecuteActions(Ptr<OpenGymDataContainer> action)
{
    auto box = DynamicCast<OpenGymBoxContainer<int32_t>>(action);
    if (!box)
    {
        NS_LOG_WARN("action is not a Box of int32: " << action);
        m_actionValid = false;
        return false;
    }
    const std::vector<int32_t>& data = box->GetData();
    if (m_network->IsEpisodeOver())
    {
        NS_LOG_WARN("an action after the end of the episode (expected continueEpisode or stop)");
        return false;
    }
    if (data.size() != m_network->GetActionSize())
    {
        NS_LOG_WARN("action has " << data.size() << " entries, expected "
                                  << m_network->GetActionSize());
        m_actionValid = false;
        return false;
    }
    m_action = data;
    m_actionValid = true;
    return true;
}

bool
IabGymEnv::ContinueEpisode(uint64_t episodeSeed)
{
    if (!m_network->IsEpisodeOver())
    {
        NS_LOG_WARN("continueEpisode in the middle of an episode");
        return false;
    }
    m_continue = true;
    m_nextSeed = static_cast<int64_t>(episodeSeed);
    return true;
}

void
IabGymEnv::StartFrame()
{
    m_actionValid = false;
    m_continue = false;
    Notify();
    if (m_openGymInterface && m_openGymInterface->IsStopRequested())
    {
        return;
    }
    if (m_network->IsEpisodeOver())
    {
        if (m_continue)
        {
            // The last frame's geometry update ran at this very instant. ThreeGppChannelModel
            // regenerates a channel matrix only when its parameters are strictly newer than
            // it, so parameters regenerated by the reset at the same instant (a LOS state
            // that flips back) would meet the old matrix, whose cluster count may differ
            // (NS_ASSERT numCluster <= m_alpha.size()). Reset one nanosecond later.
            Simulator::Schedule(NanoSeconds(1), &IabGymEnv::RestartEpisode, this);
        }
        else
        {
            Simulator::Stop();
        }
        return;
    }
    if (!m_actionValid)
    {
        m_action.assign(m_network->GetActionSize(), 0); // a rejected action leaves it idle
    }
    m_network->BeginFrame(m_action);
    const Time tick = Seconds(m_inst.tickS);
    for (uint32_t j = 0; j < m_inst.TicksPerFrame(); ++j)
    {
        Simulator::Schedule(tick * j, &IabGymEnv::Tick, this, j);
    }
    Simulator::Schedule(Seconds(m_inst.frameS), &IabGymEnv::EndFrame, this);
}

void
IabGymEnv::RestartEpisode()
{
    m_network->Reset(m_nextSeed);
    StartFrame();
}

void
IabGymEnv::Tick(uint32_t j)
{
    m_network->Tick(j);
}

void
IabGymEnv::EndFrame()
{
    m_network->EndFrame();
    ++m_framesSimulated;
    StartFrame();
}

} // namespace ns3
