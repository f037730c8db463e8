// Per-link, per-channel received power of the IAB network from ns-3's 3GPP models, cached.
#include "iab-link-gain-model.h"

#include "iab-channel-model.h"

#include "ns3/angles.h"
#include "ns3/boolean.h"
#include "ns3/constant-position-mobility-model.h"
#include "ns3/constant-velocity-mobility-model.h"
#include "ns3/double.h"
#include "ns3/enum.h"
#include "ns3/isotropic-antenna-model.h"
#include "ns3/log.h"
#include "ns3/node.h"
#include "ns3/pointer.h"
#include "ns3/spectrum-model.h"
#include "ns3/spectrum-signal-parameters.h"
#include "ns3/string.h"
#include "ns3/uinteger.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("IabLinkGainModel");
NS_OBJECT_ENSURE_REGISTERED(IabChannelConditionModel);
NS_OBJECT_ENSURE_REGISTERED(IabLinkGainModel);
NS_OBJECT_ENSURE_REGISTERED(IabSpectrumPropagationLossModel);

double
UmiLosProbability(double d2dM)
{
    const double d = std::max(d2dM, 1e-9);
    if (d <= 18.0)
    {
        return 1.0;
    }
    return 18.0 / d + std::exp(-d / 36.0) * (1.0 - 18.0 / d);
}

// ---- IabChannelConditionModel ----------------------------------------------------------------

TypeId
IabChannelConditionModel::GetTypeId()
{
    static TypeId tid = TypeId("ns3::IabChannelConditionModel")
                            .SetParent<ChannelConditionModel>()
                            .SetGroupName("Iab")
                            .AddConstructor<IabChannelConditionModel>();
    return tid;
}

IabChannelConditionModel::IabChannelConditionModel()
    : m_losCondition(CreateObject<ChannelCondition>(ChannelCondition::LOS)),
      m_nlosCondition(CreateObject<ChannelCondition>(ChannelCondition::NLOS))
{
}

IabChannelConditionModel::~IabChannelConditionModel() = default;

uint64_t
IabChannelConditionModel::Key(uint32_t a, uint32_t b)
{
    return (static_cast<uint64_t>(std::min(a, b)) << 32) | std::max(a, b);
}

void
IabChannelConditionModel::SetLos(uint32_t nodeA, uint32_t nodeB, bool los)
{
    m_los[Key(nodeA, nodeB)] = los;
}

Ptr<ChannelCondition>
IabChannelConditionModel::GetChannelCondition(Ptr<const MobilityModel> a,
                                              Ptr<const MobilityModel> b) const
{
    const auto it =
        m_los.find(Key(a->GetObject<Node>()->GetId(), b->GetObject<Node>()->GetId()));
    const bool los = (it == m_los.end()) || it->second;
    return los ? m_losCondition : m_nlosCondition;
}

int64_t
IabChannelConditionModel::AssignStreams(int64_t /* stream */)
{
    return 0;
}

// ---- IabSpectrumPropagationLossModel --------------------------------------------------------

TypeId
IabSpectrumPropagationLossModel::GetTypeId()
{
    static TypeId tid = TypeId("ns3::IabSpectrumPropagationLossModel")
                            .SetParent<ThreeGppSpectrumPropagationLossModel>()
                            .SetGroupName("Iab")
                            .AddConstructor<IabSpectrumPropagationLossModel>()
                            .AddAttribute(
                                "VerifyAgainstBase",
                                "BandGains also runs ns-3's CalcBeamformingGain and aborts "
                                "unless the two PSDs are equal bit for bit (a test switch)",
                                BooleanValue(false),
                                MakeBooleanAccessor(
                                    &IabSpectrumPropagationLossModel::m_verifyAgainstBase),
                                MakeBooleanChecker());
    return tid;
}

IabSpectrumPropagationLossModel::IabSpectrumPropagationLossModel() = default;

IabSpectrumPropagationLossModel::~IabSpectrumPropagationLossModel() = default;

void
IabSpectrumPropagationLossModel::DoDispose()
{
    m_rxCombined.clear();
    m_bandTerms.clear();
    ThreeGppSpectrumPropagationLossModel::DoDispose();
}

Ptr<const MatrixBasedChannelModel::Complex3DVector>
IabSpectrumPropagationLossModel::GetLongTermFast(
    Ptr<const MatrixBasedChannelModel::ChannelMatrix> channelMatrix,
    Ptr<const PhasedArrayModel> aPhasedArrayModel,
    Ptr<const PhasedArrayModel> bPhasedArrayModel) const
{
    // s and u are the channel matrix's own ends (it may have been generated b -> a)
    const bool isReverse =
        channelMatrix->IsReverse(aPhasedArrayModel->GetId(), bPhasedArrayModel->GetId());
    Ptr<const PhasedArrayModel> sAnt = isReverse ? bPhasedArrayModel : aPhasedArrayModel;
    Ptr<const PhasedArrayModel> uAnt = isReverse ? aPhasedArrayModel : bPhasedArrayModel;
    if (sAnt->GetNumPorts() != 1 || uAnt->GetNumPorts() != 1)
    {
        return GetLongTerm(channelMatrix, aPhasedArrayModel, bPhasedArrayModel);
    }
    const PhasedArrayModel::ComplexVector& sW = sAnt->GetBeamformingVectorRef();
    const PhasedArrayModel::ComplexVector& uW = uAnt->GetBeamformingVectorRef();

    // the base class's cache, valid for the same channel matrix and the same beams. Same
    // matrix means the same object, not only the same generation time (the base class's
    // rule): a channel regenerated twice at one instant (a geometry update at the end of an
    // episode, then the reset of the UEs to their start) would otherwise reuse the long term
    // of the previous matrix, whose cluster count may differ (NS_ASSERT numCluster <= alpha)
    const uint64_t key =
        MatrixBasedChannelModel::GetKey(aPhasedArrayModel->GetId(), bPhasedArrayModel->GetId());
    const auto cached = m_longTermMap.find(key);
    if (cached != m_longTermMap.end() && cached->second->m_channel == channelMatrix &&
        cached->second->m_sW == sW && cached->second->m_uW == uW)
    {
        return cached->second->m_longTerm;
    }

    const MatrixBasedChannelModel::Complex3DVector& h = channelMatrix->m_channel;
    const size_t nU = h.GetNumRows();
    const size_t nS = h.GetNumCols();
    const size_t nC = h.GetNumPages();
    NS_ASSERT(nU == uW.GetSize() && nS == sW.GetSize());
    // raw pointers: ValArray's element access is an out-of-line call in the ns-3 library
    const std::complex<double>* uw = uW.GetPagePtr(0);
    const std::complex<double>* sw = sW.GetPagePtr(0);

    // stage 1, w_u^T H_c: depends on the receiver beam only, shared by all the DU beams that
    // are evaluated toward the same receiver (the interferers of a geometry update). The
    // channel is kept transposed, split in real and imaginary parts, as [u][s][c], so that
    // one vectorised pass per u adds w_u H(u, s, c) to every (s, c) sum: each sum still adds
    // the same products in ns-3's order (u = 0, 1, ...)
    const size_t nSc = nS * nC;
    RxCombined& rc = m_rxCombined[key];
    if (rc.transposed != channelMatrix)
    {
        rc.transposed = channelMatrix;
        rc.channel = nullptr;
        rc.hRe.resize(nU * nSc);
        rc.hIm.resize(nU * nSc);
        for (size_t c = 0; c < nC; ++c)
        {
            // column-major pages: H(u, s, c) = page[s * nU + u]
            const std::complex<double>* page = h.GetPagePtr(c);
            for (size_t s = 0; s < nS; ++s)
            {
                for (size_t u = 0; u < nU; ++u)
                {
                    rc.hRe[u * nSc + s * nC + c] = page[s * nU + u].real();
                    rc.hIm[u * nSc + s * nC + c] = page[s * nU + u].imag();
                }
            }
        }
    }
    if (rc.channel != channelMatrix || rc.uW != uW)
    {
        rc.channel = channelMatrix;
        rc.uW = uW;
        rc.tRe.assign(nSc, 0.0);
        rc.tIm.assign(nSc, 0.0);
        AccumulateWeightedRows(uw, nU, rc.hRe.data(), rc.hIm.data(), nSc, rc.tRe.data(),
                               rc.tIm.data(), nullptr);
    }

    // stage 2, (w_u^T H_c) w_s, summed in ns-3's order (CalculateLongTermComponent: s = 0,
    // 1, ...), vectorised across the clusters
    m_stage2Re.assign(nC, 0.0);
    m_stage2Im.assign(nC, 0.0);
    AccumulateWeightedRows(sw, nS, rc.tRe.data(), rc.tIm.data(), nC, m_stage2Re.data(),
                           m_stage2Im.data(), nullptr);
    auto longTerm = Create<MatrixBasedChannelModel::Complex3DVector>(1, 1, nC);
    for (size_t c = 0; c < nC; ++c)
    {
        longTerm->Elem(0, 0, c) = std::complex<double>(m_stage2Re[c], m_stage2Im[c]);
    }
    auto item = Create<LongTerm>();
    item->m_longTerm = longTerm;
    item->m_channel = channelMatrix;
    item->m_sW = sW;
    item->m_uW = uW;
    m_longTermMap[key] = item;
    return longTerm;
}

Ptr<SpectrumSignalParameters>
IabSpectrumPropagationLossModel::DoCalcRxPowerSpectralDensity(
    Ptr<const SpectrumSignalParameters> spectrumSignalParams,
    Ptr<const MobilityModel> a,
    Ptr<const MobilityModel> b,
    Ptr<const PhasedArrayModel> aPhasedArrayModel,
    Ptr<const PhasedArrayModel> bPhasedArrayModel) const
{
    // as ThreeGppSpectrumPropagationLossModel::DoCalcRxPowerSpectralDensity (ns-3 3.44)
    Ptr<const MatrixBasedChannelModel::ChannelMatrix> channelMatrix =
        m_channelModel->GetChannel(a, b, aPhasedArrayModel, bPhasedArrayModel);
    Ptr<const MatrixBasedChannelModel::ChannelParams> channelParams =
        m_channelModel->GetParams(a, b);
    Ptr<const MatrixBasedChannelModel::Complex3DVector> longTerm =
        GetLongTermFast(channelMatrix, aPhasedArrayModel, bPhasedArrayModel);
    const bool isReverse =
        channelMatrix->IsReverse(aPhasedArrayModel->GetId(), bPhasedArrayModel->GetId());
    return CalcBeamformingGain(spectrumSignalParams,
                               longTerm,
                               channelMatrix,
                               channelParams,
                               a->GetVelocity(),
                               b->GetVelocity(),
                               aPhasedArrayModel->GetNumPorts(),
                               bPhasedArrayModel->GetNumPorts(),
                               isReverse);
}

// ---- IabLinkGainModel ------------------------------------------------------------------------

TypeId
IabLinkGainModel::GetTypeId()
{
    static TypeId tid =
        TypeId("ns3::IabLinkGainModel")
            .SetParent<Object>()
            .SetGroupName("Iab")
            .AddConstructor<IabLinkGainModel>()
            .AddAttribute("SubbandsPerChannel",
                          "Spectrum sub-bands per agent-visible channel; the channel's gain is "
                          "their mean (statistical mode)",
                          UintegerValue(4),
                          MakeUintegerAccessor(&IabLinkGainModel::m_subbandsPerChannel),
                          MakeUintegerChecker<uint32_t>(1, 64))
            .AddAttribute("ChannelRefreshDistance",
                          "A UE's 3GPP channels are generated anew once it is this far (m) from "
                          "where they were generated (their cluster angles go stale)",
                          DoubleValue(10.0),
                          MakeDoubleAccessor(&IabLinkGainModel::m_channelRefreshDistanceM),
                          MakeDoubleChecker<double>(0.1))
            .AddAttribute("BeamUpdateDistance",
                          "Statistical mode: the interference an IAB-MT (static, no Doppler) "
                          "receives from a beam is recomputed once the beam's target moved this "
                          "far (m) since the last computation",
                          DoubleValue(1.0),
                          MakeDoubleAccessor(&IabLinkGainModel::m_beamUpdateDistanceM),
                          MakeDoubleChecker<double>(0.0))
            .AddAttribute("BeamConvention",
                          "How beamforming weights from PhasedArrayModel::GetBeamformingVector "
                          "are given to ThreeGppSpectrumPropagationLossModel: auto (start-up "
                          "self-test on a LOS link picks the one with the higher gain), plain or "
                          "conjugate (needed in ns-3 3.44)",
                          StringValue("auto"),
                          MakeStringAccessor(&IabLinkGainModel::m_beamConventionAttr),
                          MakeStringChecker());
    return tid;
}

IabLinkGainModel::IabLinkGainModel() = default;

IabLinkGainModel::~IabLinkGainModel() = default;

void
IabLinkGainModel::DoDispose()
{
    m_ueChannels.clear();
    m_backhaulChannel = nullptr;
    m_backhaulSpectrum = nullptr;
    m_pathLoss = nullptr;
    m_condition = nullptr;
    m_iabCondition = nullptr;
    m_duArray.clear();
    m_mtArray.clear();
    m_ueArray.clear();
    m_bsMobility.clear();
    m_ueMobility.clear();
    m_clampMobility = nullptr;
    m_clampNode = nullptr;
    m_plainPathLoss = nullptr;
    Object::DoDispose();
}

Ptr<UniformPlanarArray>
IabLinkGainModel::MakeArray(uint32_t rows, uint32_t cols) const
{
    auto array = CreateObject<UniformPlanarArray>();
    array->SetAttribute("NumRows", UintegerValue(rows));
    array->SetAttribute("NumColumns", UintegerValue(cols));
    array->SetAttribute("AntennaElement",
                        PointerValue(CreateObject<IsotropicAntennaModel>()));
    return array;
}

Ptr<MobilityModel>
IabLinkGainModel::BsMobility(uint32_t bs) const
{
    return m_bsMobility[bs];
}

Ptr<MobilityModel>
IabLinkGainModel::ReceiverMobility(uint32_t link) const
{
    return link < m_maxIab ? m_bsMobility[link + 1] : m_ueMobility[link - m_maxIab];
}

Ptr<UniformPlanarArray>
IabLinkGainModel::ReceiverArray(uint32_t link) const
{
    return link < m_maxIab ? m_mtArray[link] : m_ueArray[link - m_maxIab];
}

void
IabLinkGainModel::Install(const IabScenarioInstance& instance)
{
    NS_LOG_FUNCTION(this);
    m_inst = instance;
    m_deterministic = instance.deterministic;
    m_nBs = instance.NumBsMax();
    m_nLinks = instance.NumLinksMax();
    m_nChannels = instance.nChannels;
    m_maxIab = instance.maxIab;
    m_pChannelMw = std::pow(10.0, (instance.bsTxPowerDbm - 10.0 * std::log10(m_nChannels)) / 10.0);
    m_linkParent.assign(m_nLinks, -1);
    for (uint32_t i = 0; i < instance.nIab; ++i)
    {
        m_linkParent[i] = instance.iabParent[i];
    }
    for (uint32_t u = 0; u < instance.nUe; ++u)
    {
        m_linkParent[m_maxIab + u] = instance.ueParent[u];
    }

    const uint32_t nBsValid = 1 + instance.nIab;
    m_bsNodes.Create(nBsValid);
    m_ueNodes.Create(instance.nUe);
    for (uint32_t b = 0; b < nBsValid; ++b)
    {
        auto mob = CreateObject<ConstantPositionMobilityModel>();
        mob->SetPosition(instance.bsXyz[b]);
        m_bsNodes.Get(b)->AggregateObject(mob);
        m_bsMobility.push_back(mob);
        m_duArray.push_back(MakeArray(instance.bsArrayRows, instance.bsArrayCols));
        if (b > 0)
        {
            m_mtArray.push_back(MakeArray(instance.bsArrayRows, instance.bsArrayCols));
        }
    }
    m_mtArray.resize(m_maxIab);
    for (uint32_t u = 0; u < instance.nUe; ++u)
    {
        auto mob = CreateObject<ConstantVelocityMobilityModel>();
        mob->SetPosition(instance.ueXyz[u]);
        m_ueNodes.Get(u)->AggregateObject(mob);
        m_ueMobility.push_back(mob);
        m_ueArray.push_back(MakeArray(instance.ueArrayRows, instance.ueArrayCols));
    }
    m_clampMobility = CreateObject<ConstantPositionMobilityModel>();
    m_clampNode = CreateObject<Node>(); // created last: the other nodes keep their ids
    m_clampNode->AggregateObject(m_clampMobility);

    const double fcHz = instance.carrierGhz * 1e9;
    m_pathLoss = CreateObject<ThreeGppUmiStreetCanyonPropagationLossModel>();
    m_pathLoss->SetAttribute("Frequency", DoubleValue(fcHz));
    m_pathLoss->SetAttribute("ShadowingEnabled", BooleanValue(!m_deterministic));
    m_pathLoss->SetAttribute("BuildingPenetrationLossesEnabled", BooleanValue(false));
    if (m_deterministic)
    {
        m_condition = CreateObject<AlwaysLosChannelConditionModel>();
    }
    else
    {
        m_iabCondition = CreateObject<IabChannelConditionModel>();
        m_condition = m_iabCondition;
    }
    m_pathLoss->SetChannelConditionModel(m_condition);
    if (!m_deterministic)
    {
        m_plainPathLoss = CreateObject<ThreeGppUmiStreetCanyonPropagationLossModel>();
        m_plainPathLoss->SetAttribute("Frequency", DoubleValue(fcHz));
        m_plainPathLoss->SetAttribute("ShadowingEnabled", BooleanValue(false));
        m_plainPathLoss->SetAttribute("BuildingPenetrationLossesEnabled", BooleanValue(false));
        m_plainPathLoss->SetChannelConditionModel(m_condition);
    }

    if (!m_deterministic)
    {
        // static panels: turning a panel invalidates its 3GPP channels (tens of ms each), so
        // MT and UE panels face their parent at the start, DU panels face their children
        for (uint32_t b = 0; b < nBsValid; ++b)
        {
            Vector sum(0, 0, 0);
            uint32_t n = 0;
            for (uint32_t l = 0; l < m_nLinks; ++l)
            {
                if (m_linkParent[l] == static_cast<int32_t>(b))
                {
                    const Vector p = ReceiverMobility(l)->GetPosition();
                    sum = Vector(sum.x + p.x, sum.y + p.y, sum.z + p.z);
                    ++n;
                }
            }
            const Vector self = instance.bsXyz[b];
            if (n > 0 && std::hypot(sum.x / n - self.x, sum.y / n - self.y) > 1.0)
            {
                m_duArray[b]->SetAlpha(std::atan2(sum.y / n - self.y, sum.x / n - self.x));
            }
        }
        for (uint32_t l = 0; l < m_nLinks; ++l)
        {
            if (m_linkParent[l] < 0)
            {
                continue;
            }
            const Vector self = ReceiverMobility(l)->GetPosition();
            const Vector parent = instance.bsXyz[m_linkParent[l]];
            ReceiverArray(l)->SetAlpha(std::atan2(parent.y - self.y, parent.x - self.x));
        }

        std::vector<BandInfo> bands;
        const uint32_t nSub = m_nChannels * m_subbandsPerChannel;
        const double bwHz = instance.bandwidthMhz * 1e6;
        const double subHz = bwHz / nSub;
        for (uint32_t i = 0; i < nSub; ++i)
        {
            BandInfo band;
            band.fl = fcHz - bwHz / 2 + subHz * i;
            band.fh = band.fl + subHz;
            band.fc = band.fl + subHz / 2;
            bands.push_back(band);
        }
        auto model = Create<SpectrumModel>(bands);
        auto psd = Create<SpectrumValue>(model);
        *psd = 1.0;
        m_txParams = Create<SpectrumSignalParameters>();
        m_txParams->psd = psd;

        auto makeChannel = [this, fcHz](Ptr<ThreeGppChannelModel>& channel,
                                        Ptr<IabSpectrumPropagationLossModel>& spectrum) {
            channel = CreateObject<IabThreeGppChannelModel>();
            channel->SetAttribute("Frequency", DoubleValue(fcHz));
            channel->SetAttribute("Scenario", StringValue("UMi-StreetCanyon"));
            channel->SetAttribute("ChannelConditionModel", PointerValue(m_condition));
            spectrum = CreateObject<IabSpectrumPropagationLossModel>();
            spectrum->SetChannelModel(channel);
        };
        makeChannel(m_backhaulChannel, m_backhaulSpectrum);
        m_ueChannels.resize(instance.nUe);
        for (uint32_t u = 0; u < instance.nUe; ++u)
        {
            makeChannel(m_ueChannels[u].channel, m_ueChannels[u].spectrum);
            m_ueChannels[u].generatedAt = instance.ueXyz[u];
        }
        SelfTestBeamConvention();
        ClearOutOfDateFlags();
    }
    m_lossDb.assign(static_cast<size_t>(m_nBs) * m_nLinks, 0.0);
    m_gain.assign(static_cast<size_t>(m_nLinks) * m_nLinks * m_nChannels, 0.0);
    m_scratch.assign(m_nChannels, 0.0);
    m_entryTarget.assign(static_cast<size_t>(m_nLinks) * m_nLinks, Vector());
    m_entryValid.assign(static_cast<size_t>(m_nLinks) * m_nLinks, 0);
}

void
IabLinkGainModel::InvalidateCache()
{
    std::fill(m_entryValid.begin(), m_entryValid.end(), 0);
}

void
IabLinkGainModel::ClearOutOfDateFlags()
{
    // A new antenna pair starts "out of date", which makes ThreeGppChannelModel generate its
    // channel a second time on the second query; the channel does not exist yet, so clear it.
    for (const auto& du : m_duArray)
    {
        for (uint32_t l = 0; l < m_nLinks; ++l)
        {
            if (m_linkParent[l] >= 0)
            {
                du->IsChannelOutOfDate(ReceiverArray(l));
                ReceiverArray(l)->IsChannelOutOfDate(du);
            }
        }
    }
}

void
IabLinkGainModel::SelfTestBeamConvention()
{
    // A LOS link between a base-station array and a UE array, off broadside so that a beam
    // toward the mirror direction is visibly worse; the expected gain is N_bs * N_ue.
    const double fcHz = m_inst.carrierGhz * 1e9;
    NodeContainer nodes;
    nodes.Create(2);
    auto txMob = CreateObject<ConstantPositionMobilityModel>();
    auto rxMob = CreateObject<ConstantPositionMobilityModel>();
    txMob->SetPosition(Vector(0.0, 0.0, m_inst.bsHeightM));
    rxMob->SetPosition(Vector(40.0, 30.0, m_inst.ueHeightM));
    nodes.Get(0)->AggregateObject(txMob);
    nodes.Get(1)->AggregateObject(rxMob);
    auto txArray = MakeArray(m_inst.bsArrayRows, m_inst.bsArrayCols);
    auto rxArray = MakeArray(m_inst.ueArrayRows, m_inst.ueArrayCols);
    auto channel = CreateObject<IabThreeGppChannelModel>();
    channel->SetAttribute("Frequency", DoubleValue(fcHz));
    channel->SetAttribute("Scenario", StringValue("UMi-StreetCanyon"));
    channel->SetAttribute("ChannelConditionModel",
                          PointerValue(CreateObject<AlwaysLosChannelConditionModel>()));
    // the class the scenario uses, so that the self-test covers its long-term computation too
    auto spectrum = CreateObject<IabSpectrumPropagationLossModel>();
    spectrum->SetChannelModel(channel);
    txArray->IsChannelOutOfDate(rxArray);
    rxArray->IsChannelOutOfDate(txArray);

    auto measure = [&](bool conjugate) {
        m_conjugate = conjugate;
        SetBeam(txArray, txMob->GetPosition(), rxMob->GetPosition());
        SetBeam(rxArray, rxMob->GetPosition(), txMob->GetPosition());
        auto rx = spectrum->CalcRxPowerSpectralDensity(m_txParams, txMob, rxMob, txArray, rxArray);
        const double mean = Sum(*rx->psd) / rx->psd->GetValuesN();
        return 10.0 * std::log10(std::max(mean, 1e-30));
    };
    const double plainDb = measure(false);
    const double conjugateDb = measure(true);
    const double expectedDb =
        10.0 * std::log10(static_cast<double>(txArray->GetNumElems() * rxArray->GetNumElems()));
    if (m_beamConventionAttr == "plain")
    {
        m_conjugate = false;
    }
    else if (m_beamConventionAttr == "conjugate")
    {
        m_conjugate = true;
    }
    else
    {
        NS_ABORT_MSG_IF(m_beamConventionAttr != "auto",
                        "IabLinkGainModel::BeamConvention=" << m_beamConventionAttr
                                                            << ", expected auto, plain or "
                                                               "conjugate");
        m_conjugate = conjugateDb > plainDb;
    }
    m_selfTestChosenDb = m_conjugate ? conjugateDb : plainDb;
    m_selfTestOtherDb = m_conjugate ? plainDb : conjugateDb;
    NS_LOG_INFO("beam self-test: plain " << plainDb << " dB, conjugate " << conjugateDb
                                         << " dB, expected about " << expectedDb
                                         << " dB; using " << GetBeamConvention());
    if (std::fabs(m_selfTestChosenDb - expectedDb) > 6.0)
    {
        NS_LOG_WARN("beam self-test: the LOS array gain " << m_selfTestChosenDb
                                                          << " dB is far from " << expectedDb
                                                          << " dB");
    }
    channel->Dispose();
    spectrum->Dispose();
}

std::string
IabLinkGainModel::GetBeamConvention() const
{
    return m_conjugate ? "conjugate" : "plain";
}

std::pair<double, double>
IabLinkGainModel::GetSelfTestGainsDb() const
{
    return {m_selfTestChosenDb, m_selfTestOtherDb};
}

uint64_t
IabLinkGainModel::GetChannelRefreshCount() const
{
    return m_refreshCount;
}

std::pair<double, double>
IabLinkGainModel::GetComputeSeconds() const
{
    return {m_geometrySeconds, m_refreshSeconds};
}

PhasedArrayModel::ComplexVector
IabLinkGainModel::BeamWeights(Ptr<UniformPlanarArray> array,
                              const Vector& from,
                              const Vector& to) const
{
    PhasedArrayModel::ComplexVector w = array->GetBeamformingVector(Angles(to, from));
    if (m_conjugate)
    {
        for (size_t i = 0; i < w.GetSize(); ++i)
        {
            w[i] = std::conj(w[i]);
        }
    }
    return w;
}

void
IabLinkGainModel::SetBeam(Ptr<UniformPlanarArray> array, const Vector& from, const Vector& to) const
{
    array->SetBeamformingVector(BeamWeights(array, from, to));
}

double
IabLinkGainModel::PanelGain(Ptr<UniformPlanarArray> array,
                            const Vector& target,
                            const Vector& direction) const
{
    // turn the panel so that the target is its broadside (bearing = azimuth, downtilt =
    // -elevation), as bridge/fallback/channel.py upa_gain_db does
    const double horiz = std::hypot(target.x, target.y);
    array->SetAlpha(horiz < 1e-12 ? 0.0 : std::atan2(target.y, target.x));
    array->SetBeta(-std::atan2(target.z, horiz));
    const Vector origin(0, 0, 0);
    const PhasedArrayModel::ComplexVector w = array->GetBeamformingVector(Angles(target, origin));
    const PhasedArrayModel::ComplexVector a = array->GetSteeringVector(Angles(direction, origin));
    std::complex<double> sum(0.0, 0.0);
    for (size_t i = 0; i < w.GetSize(); ++i)
    {
        sum += w[i] * a[i];
    }
    return std::norm(sum);
}

double
IabLinkGainModel::LossDb(uint32_t bs, uint32_t rxLink)
{
    Ptr<MobilityModel> tx = BsMobility(bs);
    Ptr<MobilityModel> rx = ReceiverMobility(rxLink);
    if (m_deterministic)
    {
        return ClampedPathLossDb(m_pathLoss, nullptr, tx, rx);
    }
    // the shadowing model is called once per pair and update, at the real position, as before
    const double lossDb = PathLossDb(m_pathLoss, tx, rx);
    const Vector t = tx->GetPosition();
    const Vector r = rx->GetPosition();
    const double d2d = std::hypot(r.x - t.x, r.y - t.y);
    if (d2d >= 10.0 && d2d <= 5000.0)
    {
        return lossDb;
    }
    const double shadowDb = lossDb - PathLossDb(m_plainPathLoss, tx, rx);
    return ClampedPathLossDb(m_plainPathLoss, m_iabCondition, tx, rx) + shadowDb;
}

double
IabLinkGainModel::ClampedPathLossDb(Ptr<ThreeGppPropagationLossModel> model,
                                    Ptr<IabChannelConditionModel> condition,
                                    Ptr<MobilityModel> tx,
                                    Ptr<MobilityModel> rx) const
{
    const Vector t = tx->GetPosition();
    const Vector r = rx->GetPosition();
    const double d2d = std::hypot(r.x - t.x, r.y - t.y);
    if (d2d >= 10.0 && d2d <= 5000.0)
    {
        return PathLossDb(model, tx, rx);
    }
    const double target = std::clamp(d2d, 10.0, 5000.0);
    const double ux = d2d > 1e-9 ? (r.x - t.x) / d2d : 1.0;
    const double uy = d2d > 1e-9 ? (r.y - t.y) / d2d : 0.0;
    m_clampMobility->SetPosition(Vector(t.x + ux * target, t.y + uy * target, r.z));
    if (condition)
    {
        const bool los = condition->GetChannelCondition(tx, rx)->IsLos();
        condition->SetLos(tx->GetObject<Node>()->GetId(), m_clampNode->GetId(), los);
    }
    return PathLossDb(model, tx, m_clampMobility);
}

double
IabLinkGainModel::PathLossDb(Ptr<ThreeGppPropagationLossModel> model,
                             Ptr<MobilityModel> bs,
                             Ptr<MobilityModel> rx)
{
    return -model->CalcRxPower(0.0, rx, bs);
}

std::string
IabLinkGainModel::GetPathLossReportJson() const
{
    // a separate model without shadowing, its LOS state set per row
    auto condition = CreateObject<IabChannelConditionModel>();
    auto model = CreateObject<ThreeGppUmiStreetCanyonPropagationLossModel>();
    model->SetAttribute("Frequency", DoubleValue(m_inst.carrierGhz * 1e9));
    model->SetAttribute("ShadowingEnabled", BooleanValue(false));
    model->SetAttribute("BuildingPenetrationLossesEnabled", BooleanValue(false));
    model->SetChannelConditionModel(condition);
    nlohmann::json rows = nlohmann::json::array();
    for (uint32_t b = 0; b < m_bsNodes.GetN(); ++b)
    {
        for (uint32_t r = 0; r < m_nLinks; ++r)
        {
            if (m_linkParent[r] < 0 || (r < m_maxIab && b == r + 1))
            {
                continue;
            }
            Ptr<MobilityModel> tx = BsMobility(b);
            Ptr<MobilityModel> rx = ReceiverMobility(r);
            const Vector t = tx->GetPosition();
            const Vector p = rx->GetPosition();
            const uint32_t txNode = m_bsNodes.Get(b)->GetId();
            const uint32_t rxNode = rx->GetObject<Node>()->GetId();
            double lossDb[2];
            for (int los = 0; los < 2; ++los)
            {
                condition->SetLos(txNode, rxNode, los == 1);
                lossDb[los] = ClampedPathLossDb(model, condition, tx, rx);
            }
            const double d2d = std::hypot(p.x - t.x, p.y - t.y);
            rows.push_back({{"bs", b},
                            {"link", r},
                            {"d2d_m", d2d},
                            {"h_bs_m", t.z},
                            {"h_rx_m", p.z},
                            {"los_probability", UmiLosProbability(d2d)},
                            {"loss_los_db", lossDb[1]},
                            {"loss_nlos_db", lossDb[0]}});
        }
    }
    condition->Dispose();
    model->Dispose();
    return rows.dump();
}

Ptr<IabSpectrumPropagationLossModel>
IabLinkGainModel::SpectrumModelFor(uint32_t rxLink)
{
    return rxLink < m_maxIab ? m_backhaulSpectrum : m_ueChannels[rxLink - m_maxIab].spectrum;
}

void
IabLinkGainModel::SpectrumGain(uint32_t bs, uint32_t rxLink, double* out)
{
    SpectrumModelFor(rxLink)->BandGains(m_txParams,
                                        BsMobility(bs),
                                        ReceiverMobility(rxLink),
                                        m_duArray[bs],
                                        ReceiverArray(rxLink),
                                        m_bandGain);
    const std::vector<double>& psd = m_bandGain;
    for (uint32_t k = 0; k < m_nChannels; ++k)
    {
        double sum = 0.0;
        for (uint32_t s = 0; s < m_subbandsPerChannel; ++s)
        {
            sum += psd[k * m_subbandsPerChannel + s];
        }
        out[k] = sum / m_subbandsPerChannel;
    }
}

void
IabLinkGainModel::RefreshUeChannel(uint32_t ue)
{
    const double fcHz = m_inst.carrierGhz * 1e9;
    UeChannel& entry = m_ueChannels[ue];
    entry.channel->Dispose();
    entry.spectrum->Dispose();
    entry.channel = CreateObject<IabThreeGppChannelModel>();
    entry.channel->SetAttribute("Frequency", DoubleValue(fcHz));
    entry.channel->SetAttribute("Scenario", StringValue("UMi-StreetCanyon"));
    entry.channel->SetAttribute("ChannelConditionModel", PointerValue(m_condition));
    entry.spectrum = CreateObject<IabSpectrumPropagationLossModel>();
    entry.spectrum->SetChannelModel(entry.channel);
    entry.generatedAt = m_ueMobility[ue]->GetPosition();
    ++m_refreshCount;
}

void
IabLinkGainModel::UpdateGeometry(const std::vector<Vector>& ueXyz,
                                 const std::vector<Vector>& ueVelocity,
                                 const std::vector<uint8_t>& los)
{
    NS_LOG_FUNCTION(this);
    const auto t0 = std::chrono::steady_clock::now();
    for (uint32_t u = 0; u < m_ueMobility.size(); ++u)
    {
        m_ueMobility[u]->SetPosition(ueXyz[u]);
        DynamicCast<ConstantVelocityMobilityModel>(m_ueMobility[u])->SetVelocity(ueVelocity[u]);
    }
    if (m_deterministic)
    {
        ComputeDeterministic();
        m_geometrySeconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return;
    }
    for (uint32_t b = 0; b < m_bsNodes.GetN(); ++b)
    {
        for (uint32_t l = 0; l < m_nLinks; ++l)
        {
            if (m_linkParent[l] < 0)
            {
                continue;
            }
            const uint32_t rxNode = ReceiverMobility(l)->GetObject<Node>()->GetId();
            const uint32_t txNode = m_bsNodes.Get(b)->GetId();
            if (rxNode != txNode)
            {
                m_iabCondition->SetLos(txNode, rxNode, los[b * m_nLinks + l] != 0);
            }
        }
    }
    for (uint32_t u = 0; u < m_ueMobility.size(); ++u)
    {
        const Vector p = ueXyz[u];
        const Vector g = m_ueChannels[u].generatedAt;
        if (std::hypot(p.x - g.x, p.y - g.y) > m_channelRefreshDistanceM)
        {
            RefreshUeChannel(u);
        }
    }
    ComputeStatistical();
    m_geometrySeconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void
IabLinkGainModel::ComputeDeterministic()
{
    const uint32_t nBsValid = m_bsNodes.GetN();
    std::fill(m_gain.begin(), m_gain.end(), 0.0);
    for (uint32_t r = 0; r < m_nLinks; ++r)
    {
        if (m_linkParent[r] < 0)
        {
            continue;
        }
        const Vector rxPos = ReceiverMobility(r)->GetPosition();
        const Vector parentPos = BsMobility(m_linkParent[r])->GetPosition();
        const Vector toParent(parentPos.x - rxPos.x, parentPos.y - rxPos.y, parentPos.z - rxPos.z);
        for (uint32_t lp = 0; lp < m_nLinks; ++lp)
        {
            if (m_linkParent[lp] < 0)
            {
                continue;
            }
            const uint32_t b = m_linkParent[lp];
            if (r < m_maxIab && b == r + 1)
            {
                continue; // an IAB node does not hear its own DU at its MT
            }
            const Vector txPos = BsMobility(b)->GetPosition();
            const Vector target = ReceiverMobility(lp)->GetPosition();
            const Vector toTarget(target.x - txPos.x, target.y - txPos.y, target.z - txPos.z);
            const Vector toRx(rxPos.x - txPos.x, rxPos.y - txPos.y, rxPos.z - txPos.z);
            const Vector fromRx(-toRx.x, -toRx.y, -toRx.z);
            const double txGain = PanelGain(m_duArray[b], toTarget, toRx);
            const double rxGain = PanelGain(ReceiverArray(r), toParent, fromRx);
            const double lossDb = LossDb(b, r);
            const double gainDb = 10.0 * std::log10(m_pChannelMw) - lossDb +
                                  10.0 * std::log10(std::max(txGain, 1e-30)) +
                                  10.0 * std::log10(std::max(rxGain, 1e-30));
            const double gain = std::pow(10.0, gainDb / 10.0);
            for (uint32_t k = 0; k < m_nChannels; ++k)
            {
                m_gain[(static_cast<size_t>(lp) * m_nLinks + r) * m_nChannels + k] = gain;
            }
        }
    }
    (void)nBsValid;
}

void
IabLinkGainModel::ComputeStatistical()
{
    const uint32_t nBsValid = m_bsNodes.GetN();
    for (uint32_t b = 0; b < nBsValid; ++b)
    {
        for (uint32_t r = 0; r < m_nLinks; ++r)
        {
            if (m_linkParent[r] >= 0 && !(r < m_maxIab && b == r + 1))
            {
                m_lossDb[b * m_nLinks + r] = LossDb(b, r);
            }
        }
    }
    // a DU's beam toward a link's receiver is the same for every receiver it interferes with:
    // compute each once per update (a steering vector costs a sine and cosine per element)
    m_txBeam.resize(m_nLinks);
    m_rxBeam.resize(m_nLinks);
    for (uint32_t lp = 0; lp < m_nLinks; ++lp)
    {
        if (m_linkParent[lp] >= 0)
        {
            const uint32_t b = m_linkParent[lp];
            m_txBeam[lp] = BeamWeights(m_duArray[b],
                                       BsMobility(b)->GetPosition(),
                                       ReceiverMobility(lp)->GetPosition());
        }
    }
    for (uint32_t r = 0; r < m_nLinks; ++r)
    {
        if (m_linkParent[r] < 0)
        {
            continue;
        }
        const uint32_t parent = m_linkParent[r];
        const Vector rxPos = ReceiverMobility(r)->GetPosition();
        m_rxBeam[r] = BeamWeights(ReceiverArray(r), rxPos, BsMobility(parent)->GetPosition());
        ReceiverArray(r)->SetBeamformingVector(m_rxBeam[r]);
        // interferers first, the serving link last: its long-term component stays cached, so
        // the per-frame RefreshSignals() only re-applies the fast fading
        std::vector<uint32_t> order;
        for (uint32_t lp = 0; lp < m_nLinks; ++lp)
        {
            if (m_linkParent[lp] < 0 || lp == r)
            {
                continue;
            }
            const uint32_t b = m_linkParent[lp];
            if (b == parent || (r < m_maxIab && b == r + 1))
            {
                continue; // same transmitter (never co-channel) or the node's own DU
            }
            order.push_back(lp);
        }
        order.push_back(r);
        for (uint32_t lp : order)
        {
            const uint32_t b = m_linkParent[lp];
            const size_t entry = static_cast<size_t>(lp) * m_nLinks + r;
            const Vector target = ReceiverMobility(lp)->GetPosition();
            if (r < m_maxIab && m_entryValid[entry] &&
                CalculateDistance(target, m_entryTarget[entry]) < m_beamUpdateDistanceM)
            {
                continue; // static receiver, (almost) the same beam: the entry still holds
            }
            m_entryTarget[entry] = target;
            m_entryValid[entry] = 1;
            m_duArray[b]->SetBeamformingVector(m_txBeam[lp]);
            SpectrumGain(b, r, m_scratch.data());
            NS_LOG_DEBUG("link " << lp << " -> receiver " << r << ": loss "
                                 << m_lossDb[b * m_nLinks + r] << " dB, beamformed gain "
                                 << 10 * std::log10(m_scratch[0]) << " dB (channel 0)");
            const double scale = m_pChannelMw * std::pow(10.0, -m_lossDb[b * m_nLinks + r] / 10.0);
            for (uint32_t k = 0; k < m_nChannels; ++k)
            {
                m_gain[(static_cast<size_t>(lp) * m_nLinks + r) * m_nChannels + k] =
                    scale * m_scratch[k];
            }
        }
    }
}

void
IabLinkGainModel::RefreshSignals()
{
    if (m_deterministic)
    {
        return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (uint32_t l = 0; l < m_nLinks; ++l)
    {
        if (m_linkParent[l] < 0)
        {
            continue;
        }
        // the beams of the last geometry update (both backends steer beams there only, see
        // docs/system-model.md): the long term w_u^T H_c w_s stays cached, and only the
        // small-scale fading (the clusters' Doppler phases) is re-evaluated at this frame's time
        const uint32_t b = m_linkParent[l];
        m_duArray[b]->SetBeamformingVector(m_txBeam[l]);
        ReceiverArray(l)->SetBeamformingVector(m_rxBeam[l]);
        SpectrumGain(b, l, m_scratch.data());
        const double scale = m_pChannelMw * std::pow(10.0, -m_lossDb[b * m_nLinks + l] / 10.0);
        for (uint32_t k = 0; k < m_nChannels; ++k)
        {
            m_gain[(static_cast<size_t>(l) * m_nLinks + l) * m_nChannels + k] = scale * m_scratch[k];
        }
    }
    m_refreshSeconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace ns3
