// The scenario instance Python generated (bridge/instance.py, JSON version 1), as C++ values.
#include "iab-scenario-instance.h"

#include "ns3/abort.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

namespace ns3
{

namespace
{
using Json = nlohmann::json;

const Json&
Field(const Json& parent, const std::string& key, const std::string& where)
{
    NS_ABORT_MSG_IF(!parent.is_object() || !parent.contains(key),
                    "instance: missing field " << where << "." << key);
    return parent.at(key);
}

template <typename T>
void
Read(const Json& section, const std::string& key, const std::string& where, T& out)
{
    const Json& value = Field(section, key, where);
    try
    {
        out = value.get<T>();
    }
    catch (const Json::exception& e)
    {
        NS_FATAL_ERROR("instance: " << where << "." << key << "=" << value.dump()
                                    << " has the wrong type: " << e.what());
    }
}

Vector
ReadVector(const Json& value, const std::string& where)
{
    NS_ABORT_MSG_IF(!value.is_array() || value.size() != 3,
                    "instance: " << where << "=" << value.dump() << " is not [x, y, z]");
    return Vector(value[0].get<double>(), value[1].get<double>(), value[2].get<double>());
}
} // namespace

uint32_t
IabScenarioInstance::TicksPerFrame() const
{
    return static_cast<uint32_t>(std::lround(frameS / tickS));
}

double
IabScenarioInstance::ChannelBandwidthHz() const
{
    return bandwidthMhz * 1e6 / nChannels;
}

IabScenarioInstance
IabScenarioInstance::FromFile(const std::string& path)
{
    std::ifstream file(path);
    NS_ABORT_MSG_IF(!file, "instance: cannot read --instance=" << path);
    std::stringstream text;
    text << file.rdbuf();
    return FromJson(text.str());
}

IabScenarioInstance
IabScenarioInstance::FromJson(const std::string& text)
{
    Json root;
    try
    {
        root = Json::parse(text);
    }
    catch (const Json::exception& e)
    {
        NS_FATAL_ERROR("instance: not valid JSON: " << e.what());
    }
    int version = 0;
    Read(root, "version", "instance", version);
    NS_ABORT_MSG_IF(version != 1, "instance: version=" << version << ", expected 1");

    IabScenarioInstance inst;
    const Json& config = Field(root, "config", "instance");
    const Json& topo = Field(config, "topology", "config");
    Read(topo, "area_m", "topology", inst.areaM);
    Read(topo, "n_iab", "topology", inst.nIab);
    Read(topo, "n_ue", "topology", inst.nUe);
    Read(topo, "bs_height_m", "topology", inst.bsHeightM);
    Read(topo, "ue_height_m", "topology", inst.ueHeightM);
    Read(topo, "max_iab", "topology", inst.maxIab);
    Read(topo, "max_ues", "topology", inst.maxUes);

    const Json& radio = Field(config, "radio", "config");
    Read(radio, "carrier_ghz", "radio", inst.carrierGhz);
    Read(radio, "bandwidth_mhz", "radio", inst.bandwidthMhz);
    Read(radio, "n_channels", "radio", inst.nChannels);
    Read(radio, "bs_tx_power_dbm", "radio", inst.bsTxPowerDbm);
    Read(radio, "noise_figure_ue_db", "radio", inst.noiseFigureUeDb);
    Read(radio, "noise_figure_iab_db", "radio", inst.noiseFigureIabDb);
    std::vector<uint32_t> bsArray;
    std::vector<uint32_t> ueArray;
    Read(radio, "bs_array", "radio", bsArray);
    Read(radio, "ue_array", "radio", ueArray);
    NS_ABORT_MSG_IF(bsArray.size() != 2 || ueArray.size() != 2,
                    "instance: radio.bs_array / radio.ue_array must be [rows, cols]");
    inst.bsArrayRows = bsArray[0];
    inst.bsArrayCols = bsArray[1];
    inst.ueArrayRows = ueArray[0];
    inst.ueArrayCols = ueArray[1];
    Read(radio, "los_corr_m", "radio", inst.losCorrM);
    Read(radio, "blockage_prob", "radio", inst.blockageProb);
    if (radio.contains("backhaul_los"))
    {
        Read(radio, "backhaul_los", "radio", inst.backhaulLos);
    }
    Read(radio, "sinr_threshold_db", "radio", inst.sinrThresholdDb);
    Read(radio, "overhead", "radio", inst.overhead);
    Read(radio, "se_efficiency", "radio", inst.seEfficiency);
    Read(radio, "se_cap_bps_hz", "radio", inst.seCapBpsHz);
    Read(radio, "se_min_sinr_db", "radio", inst.seMinSinrDb);
    Read(radio, "incumbent_interference_dbm", "radio", inst.incumbentInterferenceDbm);
    Read(radio, "deterministic", "radio", inst.deterministic);
    // the hidden deployment conditions (absent in older instances: off)
    if (radio.contains("external_block_channels"))
    {
        Read(radio, "external_block_channels", "radio", inst.externalBlockChannels);
        Read(radio, "external_eirp_dbm", "radio", inst.externalEirpDbm);
        Read(radio, "external_activity", "radio", inst.externalActivity);
    }

    const Json& traffic = Field(config, "traffic", "config");
    Read(traffic, "packet_bytes", "traffic", inst.packetBytes);
    Read(traffic, "ue_rate_mbps", "traffic", inst.ueRateMbps);
    Read(traffic, "on_mean_s", "traffic", inst.onMeanS);
    Read(traffic, "off_mean_s", "traffic", inst.offMeanS);
    Read(traffic, "delay_budget_s", "traffic", inst.delayBudgetS);

    const Json& dyn = Field(config, "dynamics", "config");
    Read(dyn, "frame_s", "dynamics", inst.frameS);
    Read(dyn, "tick_s", "dynamics", inst.tickS);
    Read(dyn, "episode_frames", "dynamics", inst.episodeFrames);
    Read(dyn, "ue_speed_mps", "dynamics", inst.ueSpeedMps);
    Read(dyn, "direction_hold_s", "dynamics", inst.directionHoldS);
    Read(dyn, "geometry_update_frames", "dynamics", inst.geometryUpdateFrames);
    Read(dyn, "incumbent_activity", "dynamics", inst.incumbentActivity);
    Read(dyn, "incumbent_on_mean_s", "dynamics", inst.incumbentOnMeanS);
    if (dyn.contains("incumbent_miss_prob"))
    {
        Read(dyn, "incumbent_miss_prob", "dynamics", inst.incumbentMissProb);
    }

    const Json& reward = Field(config, "reward", "config");
    Read(reward, "w_throughput", "reward", inst.wThroughput);
    Read(reward, "w_fairness", "reward", inst.wFairness);
    Read(reward, "w_sinr_violation", "reward", inst.wSinrViolation);
    Read(reward, "w_latency_violation", "reward", inst.wLatencyViolation);
    Read(reward, "w_incumbent_collision", "reward", inst.wIncumbentCollision);

    Read(root, "seed", "instance", inst.seed);
    for (const Json& xyz : Field(root, "bs_xyz", "instance"))
    {
        inst.bsXyz.push_back(ReadVector(xyz, "instance.bs_xyz[]"));
    }
    for (const Json& xyz : Field(root, "ue_xyz", "instance"))
    {
        inst.ueXyz.push_back(ReadVector(xyz, "instance.ue_xyz[]"));
    }
    Read(root, "iab_parent", "instance", inst.iabParent);
    Read(root, "ue_parent", "instance", inst.ueParent);
    Read(root, "ue_heading_rad", "instance", inst.ueHeadingRad);
    Read(root, "ue_hops", "instance", inst.ueHops);

    NS_ABORT_MSG_IF(inst.bsXyz.size() != 1 + inst.nIab,
                    "instance: bs_xyz has " << inst.bsXyz.size() << " rows, expected "
                                            << 1 + inst.nIab);
    NS_ABORT_MSG_IF(inst.ueXyz.size() != inst.nUe || inst.ueParent.size() != inst.nUe ||
                        inst.ueHeadingRad.size() != inst.nUe || inst.ueHops.size() != inst.nUe,
                    "instance: ue_xyz/ue_parent/ue_heading_rad/ue_hops must have n_ue="
                        << inst.nUe << " entries");
    NS_ABORT_MSG_IF(inst.iabParent.size() != inst.nIab,
                    "instance: iab_parent has " << inst.iabParent.size() << " entries, expected "
                                                << inst.nIab);
    NS_ABORT_MSG_IF(inst.nIab > inst.maxIab || inst.nUe > inst.maxUes,
                    "instance: n_iab/n_ue exceed max_iab/max_ues");
    for (uint32_t u = 0; u < inst.nUe; ++u)
    {
        NS_ABORT_MSG_IF(inst.ueHops[u].empty() || inst.ueHops[u].size() > 3,
                        "instance: ue_hops[" << u << "] has " << inst.ueHops[u].size()
                                             << " hops, expected 1..3");
    }
    NS_ABORT_MSG_IF(inst.externalBlockChannels > inst.nChannels,
                    "instance: radio.external_block_channels=" << inst.externalBlockChannels
                                                               << " exceeds radio.n_channels="
                                                               << inst.nChannels);
    NS_ABORT_MSG_IF(inst.incumbentMissProb < 0 || inst.incumbentMissProb > 1,
                    "instance: dynamics.incumbent_miss_prob=" << inst.incumbentMissProb
                                                              << " is outside [0, 1]");
    NS_ABORT_MSG_IF(std::fabs(inst.frameS / inst.tickS - inst.TicksPerFrame()) > 1e-9,
                    "instance: dynamics.frame_s must be a whole multiple of dynamics.tick_s");
    return inst;
}

} // namespace ns3
