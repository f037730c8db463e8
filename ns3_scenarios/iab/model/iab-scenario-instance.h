// The scenario instance Python generated (bridge/instance.py, JSON version 1), as C++ values.
#ifndef IAB_SCENARIO_INSTANCE_H
#define IAB_SCENARIO_INSTANCE_H

#include "ns3/vector.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ns3
{

/**
 * Every config field the IAB model reads (names as in bridge/config.py) plus the deployment:
 * base-station and UE positions, attachments, hops and the initial UE headings.
 *
 * Numbering (bridge/instance.py): base station 0 is the donor, base station i + 1 is IAB node
 * i; link i < maxIab is the backhaul of IAB node i, link maxIab + u the access link of UE u.
 */
struct IabScenarioInstance
{
    // topology
    double areaM{400.0};
    uint32_t nIab{4};
    uint32_t nUe{16};
    double bsHeightM{10.0};
    double ueHeightM{1.5};
    uint32_t maxIab{4};
    uint32_t maxUes{24};
    // radio
    double carrierGhz{28.0};
    double bandwidthMhz{400.0};
    uint32_t nChannels{8};
    double bsTxPowerDbm{30.0};
    double noiseFigureUeDb{9.0};
    double noiseFigureIabDb{7.0};
    uint32_t bsArrayRows{8};
    uint32_t bsArrayCols{8};
    uint32_t ueArrayRows{4};
    uint32_t ueArrayCols{4};
    double losCorrM{50.0};
    double blockageProb{0.0};
    bool backhaulLos{true}; ///< IAB nodes are planned in LOS of their parent
    double sinrThresholdDb{0.0};
    double overhead{0.18};
    double seEfficiency{0.6};
    double seCapBpsHz{7.4063};
    double seMinSinrDb{-10.0};
    double incumbentInterferenceDbm{-70.0};
    bool deterministic{false};
    uint32_t externalBlockChannels{0}; ///< 0: no external interferer
    double externalEirpDbm{30.0};
    double externalActivity{1.0};
    // traffic
    uint32_t packetBytes{1500};
    double ueRateMbps{100.0};
    double onMeanS{1.0};
    double offMeanS{0.2};
    double delayBudgetS{0.020};
    // dynamics
    double frameS{0.010};
    double tickS{0.001};
    uint32_t episodeFrames{200};
    double ueSpeedMps{1.5};
    double directionHoldS{5.0};
    uint32_t geometryUpdateFrames{10};
    double incumbentActivity{0.1};
    double incumbentOnMeanS{0.2};
    double incumbentMissProb{0.0};
    // reward
    double wThroughput{1.0};
    double wFairness{0.2};
    double wSinrViolation{0.5};
    double wLatencyViolation{0.5};
    double wIncumbentCollision{1.0};
    // deployment
    int64_t seed{0};
    std::vector<Vector> bsXyz;                     ///< 1 + nIab
    std::vector<int32_t> iabParent;                ///< nIab
    std::vector<Vector> ueXyz;                     ///< nUe, at the start of every episode
    std::vector<int32_t> ueParent;                 ///< nUe
    std::vector<double> ueHeadingRad;              ///< nUe
    std::vector<std::vector<int32_t>> ueHops;      ///< nUe lists of link indices

    uint32_t NumBsMax() const { return 1 + maxIab; }
    uint32_t NumLinksMax() const { return maxIab + maxUes; }
    uint32_t TicksPerFrame() const;
    double ChannelBandwidthHz() const;

    /// Parse the JSON text of ScenarioInstance.to_json(); aborts naming the bad field.
    static IabScenarioInstance FromJson(const std::string& text);
    static IabScenarioInstance FromFile(const std::string& path);
};

} // namespace ns3

#endif
