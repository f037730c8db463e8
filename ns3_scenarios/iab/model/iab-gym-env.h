// IabGymEnv: the IAB network behind the OpenGym interface, one agent step per frame.
#ifndef IAB_GYM_ENV_H
#define IAB_GYM_ENV_H

#include "iab-link-gain-model.h"
#include "iab-network.h"

#include "opengym-env.h"

#include "ns3/nstime.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ns3
{

/**
 * Spaces on the wire:
 *  - observation: Dict {"obs": Box float32 (layout v1 size,), "action_mask": Box uint32
 *    (B*K, 1+L) of 0/1}
 *  - action: Box int32 (B*K,) in [0, L] (value 0 idle, l+1 schedules link l)
 *
 * Every frame is one agent step: the frame-start event sends the state and applies the
 * answer, tick events serve the queues, the frame-end event closes the frame. The info string
 * is a JSON object with the frame's statistics and, in the state that ends the episode
 * (isGameOver, reason GameOver), "episode" = accumulators and metrics.
 *
 * Episode continuation (an extension; ns3-gym clients never use it): a reply to the game-over
 * state with the EnvActMsg field continueEpisode (episodeSeed) instead of an action starts a
 * new episode of the same deployment in the same process with that episode seed, keeping the
 * already generated channels; the next state is its initial state. It is a field of its own,
 * not an action value, so it works for every action size (one entry with max_iab=0 and
 * n_channels=1).
 */
class IabGymEnv : public OpenGymEnv
{
  public:
    static TypeId GetTypeId();
    IabGymEnv();
    ~IabGymEnv() override;

    void Setup(const IabScenarioInstance& instance, int64_t episodeSeed);
    /// Schedule the first frame at the current time.
    void Start();
    /// Number of frames simulated in this process.
    uint64_t GetFramesSimulated() const { return m_framesSimulated; }

    Ptr<OpenGymSpace> GetActionSpace() override;
    Ptr<OpenGymSpace> GetObservationSpace() override;
    bool GetGameOver() override;
    Ptr<OpenGymDataContainer> GetObservation() override;
    float GetReward() override;
    std::string GetExtraInfo() override;
    bool ExecuteActions(Ptr<OpenGymDataContainer> action) override;
    bool ContinueEpisode(uint64_t episodeSeed) override;

  protected:
    void DoDispose() override;

  private:
    void StartFrame();
    /// Reset the network to episode m_nextSeed (same deployment) and start its first frame.
    void RestartEpisode();
    void Tick(uint32_t j);
    void EndFrame();

    IabScenarioInstance m_inst;
    Ptr<IabLinkGainModel> m_gains;
    Ptr<IabNetwork> m_network;
    std::vector<int32_t> m_action;
    bool m_actionValid{false};
    bool m_continue{false};
    int64_t m_nextSeed{0};
    bool m_firstState{true};
    double m_setupS{0.0};
    uint64_t m_framesSimulated{0};
};

} // namespace ns3

#endif
