// Hidden per-deployment conditions: an external co-channel interferer and imperfect sensing.
#ifndef IAB_EXTERNAL_INTERFERENCE_H
#define IAB_EXTERNAL_INTERFERENCE_H

#include "iab-scenario-instance.h"

#include "ns3/vector.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ns3
{

/// Path loss (dB) of TR 38.901 Table 7.4.1-1, UMi street canyon, d2d clamped to [10 m, 5 km]
/// (the closed form of bridge/model/channel.py umi_pathloss_db).
double UmiPathLossDb(double d2dM, double hBsM, double hUtM, double fcGhz, bool los);

/// LOS-probability-weighted mean UMi path loss (bridge/model/channel.py mean_pathloss_db).
double UmiMeanPathLossDb(double d2dM, double hBsM, double hUtM, double fcGhz);

/// Linear gain of a half-wavelength UPA steered toward unit vector @p boresight, seen from
/// unit vector @p direction (bridge/model/channel.py upa_gain_lin).
double UpaGainLin(const Vector& direction, const Vector& boresight, uint32_t rows,
                  uint32_t cols);

/**
 * The external interferer of a deployment (bridge/model/external.py, one to one): a block
 * of radio.external_block_channels contiguous channels and a position drawn from the
 * instance seed (STREAM_DEPLOYMENT), the same for every episode; it transmits in a frame
 * with probability radio.external_activity (STREAM_EXTERNAL, episode key). A receiver picks
 * up EIRP - mean UMi path loss + its array gain toward the interferer, with its beam on its
 * own parent; no shadowing, no fading.
 */
class IabExternalInterferer
{
  public:
    IabExternalInterferer() = default;
    explicit IabExternalInterferer(const IabScenarioInstance& instance);

    bool Exists() const { return m_nChannels > 0; }
    bool Hits(uint32_t channel) const
    {
        return channel >= m_firstChannel && channel < m_firstChannel + m_nChannels;
    }
    /// Whether it transmits in @p frame of the episode with key @p episodeKey.
    bool IsOn(uint64_t episodeKey, int64_t frame) const;
    /// Power (mW per channel) at a receiver at @p rx whose beam points at @p parent.
    double ReceivedPowerMw(const Vector& rx, const Vector& parent, uint32_t rows,
                           uint32_t cols) const;

    const Vector& GetPosition() const { return m_xyz; }
    uint32_t GetFirstChannel() const { return m_firstChannel; }
    uint32_t GetNumChannels() const { return m_nChannels; }

  private:
    Vector m_xyz;
    uint32_t m_firstChannel{0};
    uint32_t m_nChannels{0};
    double m_eirpDbm{0.0};
    double m_activity{1.0};
    double m_carrierGhz{28.0};
};

/// The incumbent report: busy channels reported unless sensing misses them (probability
/// @p missProb per report and channel, STREAM_SENSING with the reported state's index).
std::vector<uint8_t> SensedIncumbents(uint64_t episodeKey, int64_t stateIndex,
                                      const std::vector<uint8_t>& incumbent, double missProb);

/// iab-scenario --externalReport: the interferer and the power at every link receiver at the
/// start positions, as JSON.
std::string ExternalReportJson(const IabScenarioInstance& instance);

} // namespace ns3

#endif
