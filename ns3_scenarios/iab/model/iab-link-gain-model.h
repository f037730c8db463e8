// Per-link, per-channel received power of the IAB network from ns-3's 3GPP models, cached.
#ifndef IAB_LINK_GAIN_MODEL_H
#define IAB_LINK_GAIN_MODEL_H

#include "iab-scenario-instance.h"

#include "ns3/channel-condition-model.h"
#include "ns3/mobility-model.h"
#include "ns3/node-container.h"
#include "ns3/object.h"
#include "ns3/ptr.h"
#include "ns3/spectrum-value.h"
#include "ns3/three-gpp-channel-model.h"
#include "ns3/three-gpp-propagation-loss-model.h"
#include "ns3/three-gpp-spectrum-propagation-loss-model.h"
#include "ns3/uniform-planar-array.h"

#include <complex>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <string>
#include <utility>
#include <vector>

namespace ns3
{

/// LOS probability of TR 38.901 Table 7.4.2-1, UMi street canyon (as the numpy twin's).
double UmiLosProbability(double d2dM);

/**
 * LOS/NLOS state of every node pair, set from outside (the IAB network draws it with the
 * fallback's counter-based hash, so both backends see the same LOS states). Pairs never set
 * are LOS. The condition objects are kept so that an unchanged state compares equal.
 */
class IabChannelConditionModel : public ChannelConditionModel
{
  public:
    static TypeId GetTypeId();
    IabChannelConditionModel();
    ~IabChannelConditionModel() override;

    /// Set the state of the (unordered) pair of nodes @p a, @p b.
    void SetLos(uint32_t nodeA, uint32_t nodeB, bool los);
    Ptr<ChannelCondition> GetChannelCondition(Ptr<const MobilityModel> a,
                                              Ptr<const MobilityModel> b) const override;
    int64_t AssignStreams(int64_t stream) override;

  private:
    static uint64_t Key(uint32_t a, uint32_t b);
    std::map<uint64_t, bool> m_los;
    Ptr<ChannelCondition> m_losCondition;
    Ptr<ChannelCondition> m_nlosCondition;
};

/**
 * ThreeGppSpectrumPropagationLossModel with a faster long-term (beamforming) step for
 * single-port arrays; the channel generation, Doppler and per-band computation are ns-3's.
 *
 * Why: the IAB model evaluates each (DU, receiver) pair with several DU beams per geometry
 * update (one per interfering link) and re-steers the serving beams every frame, so ns-3's
 * one-entry long-term cache misses almost always and CalculateLongTermComponent (generic
 * multi-port indexing, about 80 us for 64 x 16 elements) dominated the run time. Here the
 * long term w_u^T H_c w_s is computed in two stages, t_c = w_u^T H_c (kept per antenna pair
 * while the channel matrix and w_u are unchanged) and then t_c w_s, with the same products
 * summed in the same order as ns-3's CalculateLongTermComponent (the scenario's observations
 * and rewards came out bit-identical to the plain model's), and stored in the base class's
 * cache with the validity rule of ThreeGppSpectrumPropagationLossModel::GetLongTerm. Arrays
 * with several ports fall back to the base class.
 */
class IabSpectrumPropagationLossModel : public ThreeGppSpectrumPropagationLossModel
{
  public:
    static TypeId GetTypeId();
    IabSpectrumPropagationLossModel();
    ~IabSpectrumPropagationLossModel() override;
    void DoDispose() override;

    Ptr<SpectrumSignalParameters> DoCalcRxPowerSpectralDensity(
        Ptr<const SpectrumSignalParameters> spectrumSignalParams,
        Ptr<const MobilityModel> a,
        Ptr<const MobilityModel> b,
        Ptr<const PhasedArrayModel> aPhasedArrayModel,
        Ptr<const PhasedArrayModel> bPhasedArrayModel) const override;

    /**
     * The PSD DoCalcRxPowerSpectralDensity returns, one value per band, into @p out. For
     * single-port arrays and a transmit PSD of 1 in every band (the scenario's case) without
     * ns-3's spectrum channel matrix, precoding matrix and PSD copies: the same products in
     * the same order as ThreeGppSpectrumPropagationLossModel::CalcBeamformingGain and
     * GenSpectrumChannelMatrix of ns-3 3.44, so the values are bit-identical
     * (VerifyAgainstBase checks it). Any other case goes through ns-3's path.
     * (Defined in iab-spectrum-band-gains.cc.)
     */
    void BandGains(Ptr<const SpectrumSignalParameters> tx,
                   Ptr<const MobilityModel> a,
                   Ptr<const MobilityModel> b,
                   Ptr<const PhasedArrayModel> aPhasedArrayModel,
                   Ptr<const PhasedArrayModel> bPhasedArrayModel,
                   std::vector<double>& out) const;
    /// BandGains evaluations in this process so far, and of those compared with ns-3's.
    static std::pair<uint64_t, uint64_t> GetBandGainCounts();

  private:
    bool m_verifyAgainstBase{false};
    mutable std::vector<std::complex<double>> m_doppler; ///< scratch of BandGains

    /// delay x Doppler term of every (band, cluster) of one antenna pair at one instant: the
    /// same for every beam pair, so the interferers of a geometry update that share a DU and
    /// a receiver compute it once (BandGains; bit-identical, the same products)
    struct BandTerms
    {
        Ptr<const MatrixBasedChannelModel::ChannelMatrix> channel; ///< kept alive: no reuse
        Ptr<const MatrixBasedChannelModel::ChannelParams> params;  ///< of a freed address
        int64_t timeStep{-1};
        uint32_t spectrumUid{0};
        Vector sSpeed;
        Vector uSpeed;
        std::vector<std::complex<double>> term; ///< [c * nRb + i]
    };

    mutable std::unordered_map<uint64_t, BandTerms> m_bandTerms;
    /// delay_{i,c} doppler_c of one antenna pair at the current time into @p out, as
    /// ns-3 3.44's CalcBeamformingGain forms them (the delay part in the parameters' cache)
    void BandTermsOf(const SpectrumValue& txPsd,
                     Ptr<const MatrixBasedChannelModel::ChannelParams> params,
                     Ptr<const MatrixBasedChannelModel::ChannelMatrix> channelMatrix,
                     const Vector& sSpeed,
                     const Vector& uSpeed,
                     std::vector<std::complex<double>>& out) const;
    /// GetLongTerm of the base class, with the two-stage computation for single-port arrays.
    Ptr<const MatrixBasedChannelModel::Complex3DVector> GetLongTermFast(
        Ptr<const MatrixBasedChannelModel::ChannelMatrix> channelMatrix,
        Ptr<const PhasedArrayModel> aPhasedArrayModel,
        Ptr<const PhasedArrayModel> bPhasedArrayModel) const;

    /// t_c[s] = sum_u w_u[u] H(u, s, c) of one antenna pair, cluster-major.
    struct RxCombined
    {
        Ptr<const MatrixBasedChannelModel::ChannelMatrix> channel; ///< t is for this matrix
        PhasedArrayModel::ComplexVector uW;                        ///< and these rx weights
        std::vector<double> tRe; ///< [s][c]
        std::vector<double> tIm;
        Ptr<const MatrixBasedChannelModel::ChannelMatrix> transposed; ///< hRe, hIm are of it
        std::vector<double> hRe; ///< [u][s][c]: H(u, s, c), real part
        std::vector<double> hIm;
    };

    mutable std::unordered_map<uint64_t, RxCombined> m_rxCombined;
    mutable std::vector<double> m_stage2Re; ///< scratch: the long term per cluster
    mutable std::vector<double> m_stage2Im;
};

/**
 * Owns the ns-3 side of the radio: one node per base station (donor, IAB nodes) and per UE,
 * with mobility (ConstantPosition for base stations, ConstantVelocity for UEs), a
 * UniformPlanarArray per DU, per IAB-MT and per UE, and the propagation models
 * (ThreeGppUmiStreetCanyonPropagationLossModel at the carrier frequency; in statistical mode
 * also ThreeGppChannelModel + ThreeGppSpectrumPropagationLossModel, UMi-StreetCanyon, as the
 * subclasses IabThreeGppChannelModel and IabSpectrumPropagationLossModel: ns-3's models with
 * faster, bit-identical arithmetic).
 *
 * It keeps the link-gain matrix G[l'][l][k]: the power (mW) that the receiver of link l picks
 * up on channel k when the transmitter of link l' sends to its own receiver (beam toward the
 * receiver of l'; the receiver of l keeps its beam toward its own parent). The matrix is
 * recomputed at geometry updates only (UpdateGeometry); in statistical mode
 * RefreshSignals() re-evaluates the diagonal every frame so that the serving links see the
 * time-varying small-scale fading (Doppler) of the 3GPP model, with the beams of the last
 * geometry update (beams are steered at geometry updates only, as in the twin).
 *
 * Deterministic mode (radio.deterministic): no shadowing, LOS always
 * (AlwaysLosChannelConditionModel), no small-scale fading; the array gains are |w^H a(d)|^2
 * from the PhasedArrayModel's steering and beamforming vectors, with the panel turned toward
 * the beam target as the fallback does (bridge/fallback/channel.py upa_gain_db).
 */
class IabLinkGainModel : public Object
{
  public:
    static TypeId GetTypeId();
    IabLinkGainModel();
    ~IabLinkGainModel() override;

    /// Build nodes, mobility, arrays and models for @p instance (UEs at their home positions).
    void Install(const IabScenarioInstance& instance);

    /**
     * Move the UEs and recompute the gain matrix.
     * @param ueXyz positions of the valid UEs
     * @param ueVelocity their velocities (for the Doppler of the 3GPP model)
     * @param los row-major (B x L) LOS state of (base station, link receiver) pairs; ignored in
     *        deterministic mode
     */
    void UpdateGeometry(const std::vector<Vector>& ueXyz,
                        const std::vector<Vector>& ueVelocity,
                        const std::vector<uint8_t>& los);
    /// Statistical mode: re-evaluate every serving link's own gain at the current time.
    void RefreshSignals();
    /// Forget the cached entries of static receivers (a new episode: new LOS states).
    void InvalidateCache();

    /// Received power (mW) at the receiver of @p rxLink from the transmission of @p txLink.
    double GetGain(uint32_t txLink, uint32_t rxLink, uint32_t channel) const
    {
        return m_gain[(static_cast<size_t>(txLink) * m_nLinks + rxLink) * m_nChannels + channel];
    }

    /// "plain" or "conjugate": how beamforming weights are fed to the spectrum model.
    std::string GetBeamConvention() const;
    /// Array gain (dB) of the start-up LOS self-test with the chosen and the other convention.
    std::pair<double, double> GetSelfTestGainsDb() const;
    /// Number of 3GPP channel-model refreshes (all channels of one UE) so far.
    uint64_t GetChannelRefreshCount() const;
    /// Wall-clock seconds spent in geometry updates and in per-frame signal refreshes.
    std::pair<double, double> GetComputeSeconds() const;

    /**
     * Diagnostic (iab-scenario --pathLossReport): for every (base station, link receiver)
     * pair at the current positions, the 2D distance, both heights, the LOS probability and
     * the path loss (dB, no shadowing) in LOS and in NLOS, through the same calls as the
     * simulation's (ClampedPathLossDb, PathLossDb). A JSON array of objects; cheap (no 3GPP channel generation).
     */
    std::string GetPathLossReportJson() const;

  protected:
    void DoDispose() override;

  private:
    struct UeChannel
    {
        Ptr<ThreeGppChannelModel> channel;
        Ptr<IabSpectrumPropagationLossModel> spectrum;
        Vector generatedAt;
    };

    Ptr<UniformPlanarArray> MakeArray(uint32_t rows, uint32_t cols) const;
    Ptr<MobilityModel> ReceiverMobility(uint32_t link) const;
    Ptr<UniformPlanarArray> ReceiverArray(uint32_t link) const;
    Ptr<MobilityModel> BsMobility(uint32_t bs) const;
    /**
     * Path loss (+ shadowing in statistical mode), dB, the 2D distance clamped to the model's
     * range [10 m, 5 km] as the twin does. Statistical mode keeps ns-3's shadowing of the real
     * pair: full(real) - plain(real) + plain(clamped), with the shadowing-free m_plainPathLoss.
     */
    double LossDb(uint32_t bs, uint32_t rxLink);
    /**
     * PathLossDb of @p model with the receiver moved along the line from @p tx to the nearest
     * point whose 2D distance is in [10 m, 5 km] (a stand-in node; unchanged inside the range).
     * With @p condition, the stand-in pair gets the LOS state of the real pair first.
     */
    double ClampedPathLossDb(Ptr<ThreeGppPropagationLossModel> model,
                             Ptr<IabChannelConditionModel> condition,
                             Ptr<MobilityModel> tx,
                             Ptr<MobilityModel> rx) const;
    /**
     * -CalcRxPower of @p model between a base station and a receiver, receiver first: ns-3
     * 3.44's ThreeGppUmiStreetCanyonPropagationLossModel takes the first node's height as
     * h_UT when neither is at 10 m (its GetUtAndBsHeights returns min(za, za)), which made
     * the NLOS loss 0.3 (h_BS - h_UT) dB too high with the base station first.
     */
    static double PathLossDb(Ptr<ThreeGppPropagationLossModel> model,
                             Ptr<MobilityModel> bs,
                             Ptr<MobilityModel> rx);
    /// |w^H a|^2 (linear) of an array turned toward @p target, seen from @p direction.
    double PanelGain(Ptr<UniformPlanarArray> array, const Vector& target,
                     const Vector& direction) const;
    /// Beamforming weights of @p array at @p from toward @p to, in the chosen convention.
    PhasedArrayModel::ComplexVector BeamWeights(Ptr<UniformPlanarArray> array,
                                                const Vector& from,
                                                const Vector& to) const;
    void SetBeam(Ptr<UniformPlanarArray> array, const Vector& from, const Vector& to) const;
    /// Mean (over the channel's sub-bands) small-scale and beamforming gain, per channel.
    void SpectrumGain(uint32_t bs, uint32_t rxLink, double* out);
    Ptr<IabSpectrumPropagationLossModel> SpectrumModelFor(uint32_t rxLink);
    void RefreshUeChannel(uint32_t ue);
    void SelfTestBeamConvention();
    void ClearOutOfDateFlags();
    void ComputeDeterministic();
    void ComputeStatistical();

    // attributes
    uint32_t m_subbandsPerChannel;
    double m_channelRefreshDistanceM;
    double m_beamUpdateDistanceM;
    std::string m_beamConventionAttr;

    IabScenarioInstance m_inst;
    bool m_deterministic{false};
    bool m_conjugate{true};
    double m_selfTestChosenDb{0.0};
    double m_selfTestOtherDb{0.0};
    uint64_t m_refreshCount{0};
    double m_geometrySeconds{0.0};
    double m_refreshSeconds{0.0};
    uint32_t m_nBs{0};
    uint32_t m_nLinks{0};
    uint32_t m_nChannels{0};
    uint32_t m_maxIab{0};
    double m_pChannelMw{0.0};

    NodeContainer m_bsNodes;
    NodeContainer m_ueNodes;
    std::vector<Ptr<MobilityModel>> m_bsMobility;
    std::vector<Ptr<MobilityModel>> m_ueMobility;
    std::vector<Ptr<UniformPlanarArray>> m_duArray; ///< per base station
    std::vector<Ptr<UniformPlanarArray>> m_mtArray; ///< per IAB node
    std::vector<Ptr<UniformPlanarArray>> m_ueArray; ///< per UE
    std::vector<int32_t> m_linkParent;              ///< -1 for links that do not exist

    Ptr<ThreeGppPropagationLossModel> m_pathLoss;
    Ptr<ChannelConditionModel> m_condition;
    Ptr<IabChannelConditionModel> m_iabCondition;
    Ptr<ThreeGppChannelModel> m_backhaulChannel;
    Ptr<IabSpectrumPropagationLossModel> m_backhaulSpectrum;
    std::vector<double> m_bandGain; ///< per spectrum band, scratch of SpectrumGain
    std::vector<UeChannel> m_ueChannels;
    Ptr<SpectrumSignalParameters> m_txParams;
    Ptr<MobilityModel> m_clampMobility; ///< stand-in receiver when closer than 10 m (2D)
    Ptr<Node> m_clampNode;              ///< its node (the condition model looks nodes up)
    Ptr<ThreeGppPropagationLossModel> m_plainPathLoss; ///< statistical: no shadowing

    std::vector<double> m_lossDb;  ///< (B x L)
    std::vector<double> m_gain;    ///< (L x L x K)
    std::vector<double> m_scratch; ///< K
    std::vector<Vector> m_entryTarget; ///< (L x L) beam target when the entry was computed
    std::vector<uint8_t> m_entryValid; ///< (L x L) entry of a static receiver still valid
    /// (L) DU weights toward each link's receiver at the current geometry update
    std::vector<PhasedArrayModel::ComplexVector> m_txBeam;
    /// (L) each link receiver's weights toward its parent at the current geometry update
    std::vector<PhasedArrayModel::ComplexVector> m_rxBeam;
};

} // namespace ns3

#endif
