// IabSpectrumPropagationLossModel::BandGains: the received PSD per band without ns-3's copies.
#include "iab-link-gain-model.h"

#include "ns3/log.h"
#include "ns3/simulator.h"
#include "ns3/spectrum-signal-parameters.h"

#include <cmath>
#include <complex>
#include <cstring>

namespace ns3
{

namespace
{
uint64_t g_bandGains = 0;
uint64_t g_bandGainsVerified = 0;
} // namespace

std::pair<uint64_t, uint64_t>
IabSpectrumPropagationLossModel::GetBandGainCounts()
{
    return {g_bandGains, g_bandGainsVerified};
}

void
IabSpectrumPropagationLossModel::BandTermsOf(
    const SpectrumValue& txPsd,
    Ptr<const MatrixBasedChannelModel::ChannelParams> params,
    Ptr<const MatrixBasedChannelModel::ChannelMatrix> channelMatrix,
    const Vector& sSpeed,
    const Vector& uSpeed,
    std::vector<std::complex<double>>& out) const
{
    using C = std::complex<double>;
    const size_t nRb = txPsd.GetValuesN();
    const size_t nC = channelMatrix->m_channel.GetNumPages();
    // the Doppler term of every cluster (TR 38.901 7.5-22 simplified to the cluster centre
    // angles), as CalcBeamformingGain computes it; s is a, u is b
    const double slotTime = Simulator::Now().GetSeconds();
    const double factor = 2 * M_PI * slotTime * GetFrequency() / 3e8;
    const bool isSameDir = params->m_nodeIds == channelMatrix->m_nodeIds;
    using MBCM = MatrixBasedChannelModel;
    const auto& sincos = params->m_cachedAngleSincos;
    const auto& zoa = sincos[isSameDir ? MBCM::ZOA_INDEX : MBCM::ZOD_INDEX];
    const auto& zod = sincos[isSameDir ? MBCM::ZOD_INDEX : MBCM::ZOA_INDEX];
    const auto& aoa = sincos[isSameDir ? MBCM::AOA_INDEX : MBCM::AOD_INDEX];
    const auto& aod = sincos[isSameDir ? MBCM::AOD_INDEX : MBCM::AOA_INDEX];
    m_doppler.resize(nC);
    for (size_t c = 0; c < nC; ++c)
    {
        const double alpha = params->m_alpha[c];
        const double D = params->m_D[c];
        const double tempDoppler =
            factor *
            ((zoa[c].first * aoa[c].second * uSpeed.x + zoa[c].first * aoa[c].first * uSpeed.y +
              zoa[c].second * uSpeed.z) +
             (zod[c].first * aod[c].second * sSpeed.x + zod[c].first * aod[c].first * sSpeed.y +
              zod[c].second * sSpeed.z) +
             2 * alpha * D);
        m_doppler[c] = C(cos(tempDoppler), sin(tempDoppler));
    }

    // the delay term of every (band, cluster), kept in the parameters' own cache with the
    // validity rule of GenSpectrumChannelMatrix
    const double rbWidth = txPsd.ConstBandsBegin()->fh - txPsd.ConstBandsBegin()->fl;
    if (params->m_cachedDelaySincos.GetNumRows() != nRb ||
        params->m_cachedDelaySincos.GetNumCols() != nC || params->m_cachedRbWidth != rbWidth)
    {
        params->m_cachedRbWidth = rbWidth;
        params->m_cachedDelaySincos = ComplexMatrixArray(nRb, nC);
        auto band = txPsd.ConstBandsBegin();
        for (size_t i = 0; i < nRb; ++i, ++band)
        {
            const double fsb = band->fc;
            for (size_t c = 0; c < nC; ++c)
            {
                const double delay = -2 * M_PI * fsb * (params->m_delay[c]);
                params->m_cachedDelaySincos(i, c) = C(cos(delay), sin(delay));
            }
        }
    }

    // delay_{i,c} doppler_c, the products CalcBeamformingGain forms
    const C* delay = params->m_cachedDelaySincos.GetPagePtr(0); // column-major: (i, c) at c nRb + i
    out.resize(nC * nRb);
    for (size_t c = 0; c < nC; ++c)
    {
        for (size_t i = 0; i < nRb; ++i)
        {
            C term = delay[c * nRb + i];
            term *= m_doppler[c];
            out[c * nRb + i] = term;
        }
    }
}

void
IabSpectrumPropagationLossModel::BandGains(Ptr<const SpectrumSignalParameters> tx,
                                           Ptr<const MobilityModel> a,
                                           Ptr<const MobilityModel> b,
                                           Ptr<const PhasedArrayModel> aPhasedArrayModel,
                                           Ptr<const PhasedArrayModel> bPhasedArrayModel,
                                           std::vector<double>& out) const
{
    using C = std::complex<double>;
    const SpectrumValue& txPsd = *tx->psd;
    const size_t nRb = txPsd.GetValuesN();
    bool unitPsd = aPhasedArrayModel->GetNumPorts() == 1 && bPhasedArrayModel->GetNumPorts() == 1;
    for (size_t i = 0; i < nRb && unitPsd; ++i)
    {
        unitPsd = txPsd[i] == 1.0;
    }
    out.resize(nRb);
    if (!unitPsd)
    {
        const Ptr<SpectrumSignalParameters> rx =
            DoCalcRxPowerSpectralDensity(tx, a, b, aPhasedArrayModel, bPhasedArrayModel);
        for (size_t i = 0; i < nRb; ++i)
        {
            out[i] = (*rx->psd)[i];
        }
        return;
    }
    ++g_bandGains;
    // as DoCalcRxPowerSpectralDensity
    Ptr<const MatrixBasedChannelModel::ChannelMatrix> channelMatrix =
        m_channelModel->GetChannel(a, b, aPhasedArrayModel, bPhasedArrayModel);
    Ptr<const MatrixBasedChannelModel::ChannelParams> params = m_channelModel->GetParams(a, b);
    Ptr<const MatrixBasedChannelModel::Complex3DVector> longTerm =
        GetLongTermFast(channelMatrix, aPhasedArrayModel, bPhasedArrayModel);
    const bool isReverse =
        channelMatrix->IsReverse(aPhasedArrayModel->GetId(), bPhasedArrayModel->GetId());
    const size_t nC = channelMatrix->m_channel.GetNumPages();

    // delay x Doppler of every (band, cluster): depends on the antenna pair's channel, the
    // time and the speeds, not on the beams, so it is kept per antenna pair for the current
    // instant (the interferers of a geometry update evaluate each pair with several DU beams)
    const Vector sSpeed = a->GetVelocity();
    const Vector uSpeed = b->GetVelocity();
    BandTerms& terms = m_bandTerms[MatrixBasedChannelModel::GetKey(aPhasedArrayModel->GetId(),
                                                                   bPhasedArrayModel->GetId())];
    const int64_t timeStep = Simulator::Now().GetTimeStep();
    const uint32_t spectrumUid = txPsd.GetSpectrumModelUid();
    if (terms.channel != channelMatrix || terms.params != params || terms.timeStep != timeStep ||
        terms.spectrumUid != spectrumUid || !(terms.sSpeed == sSpeed) ||
        !(terms.uSpeed == uSpeed) || terms.term.size() != nC * nRb)
    {
        terms.channel = channelMatrix;
        terms.params = params;
        terms.timeStep = timeStep;
        terms.spectrumUid = spectrumUid;
        terms.sSpeed = sSpeed;
        terms.uSpeed = uSpeed;
        BandTermsOf(txPsd, params, channelMatrix, sSpeed, uSpeed, terms.term);
    }

    // per band: sum_c longTerm_c delay_{i,c} doppler_c (the 1 x 1 long term is its own
    // transpose), times sqrt(PSD) = 1; with one port the precoder is 1 and the received PSD
    // is |h|^2 = Re(conj(h) h)
    const C* lt = longTerm->GetPagePtr(0); // 1 x 1 pages: element c is page c
    const C* term = terms.term.data();      // (i, c) at c nRb + i
    for (size_t i = 0; i < nRb; ++i)
    {
        C gain(0.0, 0.0);
        for (size_t c = 0; c < nC; ++c)
        {
            gain += lt[c] * term[c * nRb + i];
        }
        const C h = std::sqrt(txPsd[i]) * gain;
        out[i] = 0.0;
        out[i] += std::real(std::conj(h) * h);
    }

    if (m_verifyAgainstBase)
    {
        const Ptr<SpectrumSignalParameters> ref = CalcBeamformingGain(tx,
                                                                      longTerm,
                                                                      channelMatrix,
                                                                      params,
                                                                      sSpeed,
                                                                      uSpeed,
                                                                      1,
                                                                      1,
                                                                      isReverse);
        for (size_t i = 0; i < nRb; ++i)
        {
            const double expected = (*ref->psd)[i];
            NS_ABORT_MSG_IF(std::memcmp(&expected, &out[i], sizeof(double)) != 0,
                            "IabSpectrumPropagationLossModel::BandGains: band "
                                << i << " gives " << out[i] << ", ns-3's CalcBeamformingGain "
                                << expected);
        }
        ++g_bandGainsVerified;
    }
}

} // namespace ns3
