// The IAB network's frame dynamics (allocation rules, SINR, queues, traffic, incumbents).
#ifndef IAB_NETWORK_H
#define IAB_NETWORK_H

#include "iab-external-interference.h"
#include "iab-link-gain-model.h"
#include "iab-scenario-instance.h"

#include "ns3/object.h"
#include "ns3/ptr.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ns3
{

/// What one frame did (the fallback's per-step info).
struct IabFrameResult
{
    std::vector<int32_t> allocation; ///< (B x K) link index reaching the channel, -1 idle
    std::vector<double> sinrDb;      ///< (B x K), -inf where idle
    int64_t deliveredBytes{0};
    int64_t droppedBytes{0};
    int64_t arrivedBytes{0};
    int64_t sinrViolations{0};
    int64_t halfDuplexConflicts{0};
    int64_t invalidActions{0};
    int64_t incumbentCollisions{0};
    int64_t scheduled{0};
    double reward{0.0};
    /// who did what, per base station (credit assignment): bytes its access links
    /// delivered, its SINR violations and its scheduled choices (they add up to the totals)
    std::vector<int64_t> deliveredBytesBs;
    std::vector<int64_t> sinrViolationsBs;
    std::vector<int64_t> scheduledBs;
    /// the reward split over base stations (adds up to reward): each one's own throughput
    /// and SINR-violation terms plus an equal share of the rest over the deployment's
    /// base stations; 0 on padding base stations
    std::vector<double> rewardBs;
};

/**
 * One IAB network: the C++ twin of bridge/fallback/core.py for a single environment.
 *
 * The same counter-based draws (IabRng) drive traffic, on/off bursts, incumbents, mobility
 * and the LOS states, so for the same instance and episode seed both backends carry the same
 * traffic; the radio comes from IabLinkGainModel (ns-3's 3GPP models). A frame is split into
 * calls the scenario schedules as ns-3 events: BeginFrame (rules, incumbents, SINR, link
 * capacities, the frame's arrivals), Tick (one queue-service tick, ticks_per_frame times),
 * EndFrame (observation side effects, reward, accumulators, mobility and geometry).
 *
 * Queues are byte cursors along each UE's path (donor -> IAB -> IAB -> UE): cursor[u][h]
 * counts the bytes that left hop h, served oldest first; a link shared by several UEs splits
 * its capacity in proportion to their backlogs; bytes older than the delay budget are dropped.
 */
class IabNetwork : public Object
{
  public:
    static TypeId GetTypeId();
    IabNetwork();
    ~IabNetwork() override;

    void Install(const IabScenarioInstance& instance, Ptr<IabLinkGainModel> gains);
    /// Start an episode keyed by @p episodeSeed (UEs back home, queues empty).
    void Reset(int64_t episodeSeed);

    /// Apply the (B*K) action of this frame; see bridge/layout.py for the encoding.
    void BeginFrame(const std::vector<int32_t>& action);
    /// Serve tick @p j (0 .. ticks_per_frame-1) of the current frame.
    void Tick(uint32_t j);
    /// Close the frame: reward, statistics, frame counter, mobility and geometry updates.
    void EndFrame();

    uint32_t GetFrame() const { return m_frame; }
    bool IsEpisodeOver() const { return m_frame >= m_inst.episodeFrames; }
    const IabFrameResult& GetLastFrame() const { return m_result; }
    int64_t GetEpisodeSeed() const { return m_episodeSeed; }

    /// Flat float32 observation, layout version 1 (bridge/layout.py).
    std::vector<float> GetObservation() const;
    uint32_t GetObservationSize() const;
    /// (B*K) x (1+L) allowed action values, row-major.
    std::vector<uint32_t> GetActionMask() const;
    uint32_t GetActionSize() const { return m_nBs * m_nChannels; }
    uint32_t GetNumChoices() const { return 1 + m_nLinks; }

    /// Episode accumulators and metrics (bridge/metrics.py definitions) as a JSON object.
    std::string GetEpisodeJson() const;
    /// Bytes still queued anywhere (conservation checks).
    int64_t GetBytesInQueues() const;

  private:
    void UpdateGeometry(const std::vector<double>& movedM);
    void MoveUes(std::vector<double>& movedM);
    void LinkQueues(std::vector<double>& backlog, std::vector<double>& holTicks) const;
    double OnFraction() const;
    size_t G(uint32_t b, uint32_t l) const { return static_cast<size_t>(b) * m_nLinks + l; }

    static constexpr uint32_t H = 3;

    IabScenarioInstance m_inst;
    Ptr<IabLinkGainModel> m_gains;
    uint32_t m_nBs{0};
    uint32_t m_nLinks{0};
    uint32_t m_nChannels{0};
    uint32_t m_maxIab{0};
    uint32_t m_nUe{0};
    uint32_t m_ticks{0};
    uint32_t m_budgetTicks{0};
    double m_bytesPerTickFactor{0.0};
    std::vector<double> m_noiseMw; ///< per link
    double m_incumbentMw{0.0};
    IabExternalInterferer m_external;  ///< the deployment's external interferer
    std::vector<double> m_externalMw;  ///< per link: its power at the receiver when on

    // static deployment
    std::vector<uint8_t> m_linkValid;
    std::vector<int32_t> m_linkParent;
    std::vector<uint8_t> m_allowed; ///< (B x L)
    std::vector<int32_t> m_hopLink; ///< (U x H), L = none
    std::vector<uint32_t> m_lastHop;

    // episode state
    int64_t m_episodeSeed{0};
    uint64_t m_key{0};
    uint32_t m_frame{0};
    int64_t m_geoIndex{0};
    std::vector<Vector> m_ueXyz;
    std::vector<double> m_heading;
    std::vector<double> m_losU;  ///< (B x L)
    std::vector<double> m_blkU;  ///< (B x L)
    std::vector<uint8_t> m_los;  ///< (B x L)
    std::vector<uint8_t> m_onoff;
    std::vector<uint8_t> m_incumbent;
    std::vector<uint8_t> m_incumbentSeen;
    std::vector<int64_t> m_arrived;     ///< per UE, cumulative
    std::vector<int64_t> m_cursor;      ///< (U x H)
    std::vector<int64_t> m_ring;        ///< (D x U) cumulative arrivals D ticks ago
    std::vector<int64_t> m_pLast;       ///< per UE: bytes delivered or dropped
    uint64_t m_globalTick{0};
    std::vector<float> m_lastSinr;      ///< (L x K) dB / 10, sentinel where not scheduled
    std::vector<float> m_cqi;           ///< (L x K) dB / 10

    // frame state
    std::vector<int64_t> m_capacity;    ///< per link, bytes per tick this frame
    std::vector<int64_t> m_perTick;     ///< (U x T) arriving bytes
    std::vector<int64_t> m_deliveredUe; ///< this frame
    int64_t m_frameStartPLast{0};
    IabFrameResult m_result;

    // accumulators
    std::vector<int64_t> m_accDeliveredUe;
    int64_t m_accDropped{0};
    int64_t m_accArrived{0};
    int64_t m_accScheduled{0};
    int64_t m_accSinrViolations{0};
    int64_t m_accIncumbent{0};
    int64_t m_accHalfDuplex{0};
    int64_t m_accInvalid{0};
    double m_accReward{0.0};
};

} // namespace ns3

#endif
