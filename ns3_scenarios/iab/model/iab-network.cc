// The IAB network's frame dynamics (allocation rules, SINR, queues, traffic, incumbents).
#include "iab-network.h"

#include "iab-rng.h"

#include "ns3/abort.h"
#include "ns3/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("IabNetwork");
NS_OBJECT_ENSURE_REGISTERED(IabNetwork);

namespace
{
constexpr float LAST_SINR_SENTINEL = -5.0F;
constexpr double SNR_SCALE_DB = 10.0;
constexpr double BACKLOG_SCALE_BYTES = 1e6;
constexpr float OBS_BOUND = 30.0F; ///< every observation value is clipped to +-OBS_BOUND

double
Jain(const std::vector<int64_t>& x)
{
    double s1 = 0.0;
    double s2 = 0.0;
    for (int64_t v : x)
    {
        s1 += static_cast<double>(v);
        s2 += static_cast<double>(v) * static_cast<double>(v);
    }
    if (s2 <= 0.0)
    {
        return 0.0; // nobody served: no fairness credit (same rule as bridge/metrics.py)
    }
    return s1 * s1 / (static_cast<double>(x.size()) * s2);
}
} // namespace

TypeId
IabNetwork::GetTypeId()
{
    static TypeId tid = TypeId("ns3::IabNetwork")
                            .SetParent<Object>()
                            .SetGroupName("Iab")
                            .AddConstructor<IabNetwork>();
    return tid;
}

IabNetwork::IabNetwork() = default;

IabNetwork::~IabNetwork() = default;

void
IabNetwork::Install(const IabScenarioInstance& instance, Ptr<IabLinkGainModel> gains)
{
    NS_LOG_FUNCTION(this);
    m_inst = instance;
    m_gains = gains;
    m_nBs = instance.NumBsMax();
    m_nLinks = instance.NumLinksMax();
    m_nChannels = instance.nChannels;
    m_maxIab = instance.maxIab;
    m_nUe = instance.nUe;
    m_ticks = instance.TicksPerFrame();
    m_budgetTicks = std::max<uint32_t>(
        1, static_cast<uint32_t>(std::nearbyint(instance.delayBudgetS / instance.tickS)));
    const double channelHz = instance.ChannelBandwidthHz();
    m_bytesPerTickFactor = channelHz * instance.tickS * (1 - instance.overhead) / 8;
    m_noiseMw.assign(m_nLinks, 0.0);
    for (uint32_t l = 0; l < m_nLinks; ++l)
    {
        const double nf = l < m_maxIab ? instance.noiseFigureIabDb : instance.noiseFigureUeDb;
        const double noiseDbm = -174.0 + 10.0 * std::log10(channelHz) + nf;
        m_noiseMw[l] = std::pow(10.0, noiseDbm / 10);
    }
    m_incumbentMw = std::pow(10.0, instance.incumbentInterferenceDbm / 10);
    m_external = IabExternalInterferer(instance);
    m_externalMw.assign(m_nLinks, 0.0);
    NS_LOG_INFO("external interferer: " << m_external.GetNumChannels() << " channels from "
                                        << m_external.GetFirstChannel() << " at "
                                        << m_external.GetPosition());

    m_linkValid.assign(m_nLinks, 0);
    m_linkParent.assign(m_nLinks, 0);
    for (uint32_t i = 0; i < instance.nIab; ++i)
    {
        m_linkValid[i] = 1;
        m_linkParent[i] = instance.iabParent[i];
    }
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        m_linkValid[m_maxIab + u] = 1;
        m_linkParent[m_maxIab + u] = instance.ueParent[u];
    }
    m_allowed.assign(static_cast<size_t>(m_nBs) * m_nLinks, 0);
    for (uint32_t b = 0; b <= instance.nIab; ++b)
    {
        for (uint32_t l = 0; l < m_nLinks; ++l)
        {
            m_allowed[G(b, l)] = m_linkValid[l] && m_linkParent[l] == static_cast<int32_t>(b);
        }
    }
    m_hopLink.assign(static_cast<size_t>(m_nUe) * H, static_cast<int32_t>(m_nLinks));
    m_lastHop.assign(m_nUe, 0);
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        const auto& hops = instance.ueHops[u];
        for (size_t h = 0; h < hops.size(); ++h)
        {
            NS_ABORT_MSG_IF(hops[h] < 0 || hops[h] >= static_cast<int32_t>(m_nLinks),
                            "instance: ue_hops[" << u << "] names link " << hops[h]);
            m_hopLink[u * H + h] = hops[h];
        }
        m_lastHop[u] = static_cast<uint32_t>(hops.size()) - 1;
    }
    m_capacity.assign(m_nLinks + 1, 0);
    m_perTick.assign(static_cast<size_t>(m_nUe) * m_ticks, 0);
    m_deliveredUe.assign(m_nUe, 0);
    m_ring.assign(static_cast<size_t>(m_budgetTicks) * m_nUe, 0);
}

double
IabNetwork::OnFraction() const
{
    return m_inst.offMeanS == 0 ? 1.0 : m_inst.onMeanS / (m_inst.onMeanS + m_inst.offMeanS);
}

void
IabNetwork::Reset(int64_t episodeSeed)
{
    NS_LOG_FUNCTION(this << episodeSeed);
    using namespace iab;
    m_episodeSeed = episodeSeed;
    m_key = SeedKey(episodeSeed);
    m_frame = 0;
    m_geoIndex = 0;
    m_ueXyz = m_inst.ueXyz;
    m_heading = m_inst.ueHeadingRad;
    const size_t nPairs = static_cast<size_t>(m_nBs) * m_nLinks;
    m_losU.assign(nPairs, 0.0);
    m_blkU.assign(nPairs, 0.0);
    m_los.assign(nPairs, 1);
    for (uint32_t b = 0; b < m_nBs; ++b)
    {
        for (uint32_t r = 0; r < m_nLinks; ++r)
        {
            m_losU[G(b, r)] = ToUniform(HashKeys(m_key, {STREAM_LOS, 0, b, r}));
            m_blkU[G(b, r)] = ToUniform(HashKeys(m_key, {STREAM_BLOCK, 0, b, r}));
        }
    }
    const double onFraction = OnFraction();
    m_onoff.assign(m_nUe, 0);
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        m_onoff[u] = ToUniform(HashKeys(m_key, {STREAM_ONOFF, 0, u})) < onFraction;
    }
    m_incumbent.assign(m_nChannels, 0);
    for (uint32_t k = 0; k < m_nChannels; ++k)
    {
        m_incumbent[k] =
            ToUniform(HashKeys(m_key, {STREAM_INCUMBENT, 0, k})) < m_inst.incumbentActivity;
    }
    m_incumbentSeen = SensedIncumbents(m_key, 0, m_incumbent, m_inst.incumbentMissProb);
    std::fill(m_ring.begin(), m_ring.end(), 0);
    m_arrived.assign(m_nUe, 0);
    m_cursor.assign(static_cast<size_t>(m_nUe) * H, 0);
    m_pLast.assign(m_nUe, 0);
    m_accDeliveredUe.assign(m_nUe, 0);
    m_accDropped = m_accArrived = m_accScheduled = m_accSinrViolations = 0;
    m_accIncumbent = m_accHalfDuplex = m_accInvalid = 0;
    m_accReward = 0.0;
    m_lastSinr.assign(static_cast<size_t>(m_nLinks) * m_nChannels, LAST_SINR_SENTINEL);
    m_result = IabFrameResult();
    m_gains->InvalidateCache();
    UpdateGeometry(std::vector<double>(m_nUe, 0.0));
    m_cqi.assign(static_cast<size_t>(m_nLinks) * m_nChannels, 0.0F);
    for (uint32_t l = 0; l < m_nLinks; ++l)
    {
        for (uint32_t k = 0; k < m_nChannels && m_linkValid[l]; ++k)
        {
            const double snr = m_gains->GetGain(l, l, k) / m_noiseMw[l];
            m_cqi[l * m_nChannels + k] =
                static_cast<float>(10 * std::log10(std::max(snr, 1e-30)) / SNR_SCALE_DB);
        }
    }
}

void
IabNetwork::UpdateGeometry(const std::vector<double>& movedM)
{
    using namespace iab;
    if (!m_inst.deterministic)
    {
        for (uint32_t b = 0; b < m_nBs; ++b)
        {
            const Vector tx = m_inst.bsXyz[std::min<uint32_t>(b, m_inst.nIab)];
            for (uint32_t r = 0; r < m_nLinks; ++r)
            {
                const double moved = r < m_maxIab || r - m_maxIab >= m_nUe
                                         ? 0.0
                                         : movedM[r - m_maxIab];
                const double change =
                    ToUniform(HashKeys(m_key, {STREAM_LOS, m_geoIndex, b, r + 7919}));
                if (change < 1 - std::exp(-moved / m_inst.losCorrM))
                {
                    m_losU[G(b, r)] = ToUniform(HashKeys(m_key, {STREAM_LOS, m_geoIndex, b, r}));
                    m_blkU[G(b, r)] =
                        ToUniform(HashKeys(m_key, {STREAM_BLOCK, m_geoIndex, b, r}));
                }
                if (!m_linkValid[r] || b > m_inst.nIab)
                {
                    continue;
                }
                const Vector rx = r < m_maxIab ? m_inst.bsXyz[r + 1] : m_ueXyz[r - m_maxIab];
                const double d2d = std::hypot(rx.x - tx.x, rx.y - tx.y);
                m_los[G(b, r)] = (m_losU[G(b, r)] < UmiLosProbability(d2d) &&
                                  m_blkU[G(b, r)] >= m_inst.blockageProb) ||
                                 (m_inst.backhaulLos && r < m_maxIab &&
                                  m_linkParent[r] == static_cast<int32_t>(b));
            }
        }
    }
    std::vector<Vector> velocity(m_nUe);
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        velocity[u] = Vector(m_inst.ueSpeedMps * std::cos(m_heading[u]),
                             m_inst.ueSpeedMps * std::sin(m_heading[u]),
                             0.0);
    }
    m_gains->UpdateGeometry(m_ueXyz, velocity, m_los);
    // the external interferer's power at every receiver (beam toward its own parent)
    for (uint32_t l = 0; l < m_nLinks && m_external.Exists(); ++l)
    {
        if (!m_linkValid[l])
        {
            continue;
        }
        const bool mt = l < m_maxIab;
        const Vector rx = mt ? m_inst.bsXyz[l + 1] : m_ueXyz[l - m_maxIab];
        m_externalMw[l] = m_external.ReceivedPowerMw(
            rx, m_inst.bsXyz[m_linkParent[l]], mt ? m_inst.bsArrayRows : m_inst.ueArrayRows,
            mt ? m_inst.bsArrayCols : m_inst.ueArrayCols);
    }
}

void
IabNetwork::MoveUes(std::vector<double>& movedM)
{
    using namespace iab;
    const double periodS = m_inst.geometryUpdateFrames * m_inst.frameS;
    const double half = m_inst.areaM / 2;
    movedM.assign(m_nUe, 0.0);
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        const double turn = ToUniform(HashKeys(m_key, {STREAM_MOBILITY, m_geoIndex, u, 1}));
        const double newHeading =
            2 * M_PI * ToUniform(HashKeys(m_key, {STREAM_MOBILITY, m_geoIndex, u, 2}));
        double heading = turn < periodS / m_inst.directionHoldS ? newHeading : m_heading[u];
        const double step = m_inst.ueSpeedMps * periodS;
        double x = m_ueXyz[u].x + step * std::cos(heading);
        double y = m_ueXyz[u].y + step * std::sin(heading);
        const bool overX = std::fabs(x) > half;
        const bool overY = std::fabs(y) > half;
        if (overX)
        {
            x = std::copysign(1.0, x) * (2 * half) - x;
            heading = M_PI - heading;
        }
        if (overY)
        {
            y = std::copysign(1.0, y) * (2 * half) - y;
            heading = -heading;
        }
        m_heading[u] = heading;
        m_ueXyz[u].x = x;
        m_ueXyz[u].y = y;
        movedM[u] = step;
    }
}

void
IabNetwork::BeginFrame(const std::vector<int32_t>& action)
{
    NS_LOG_FUNCTION(this << m_frame);
    using namespace iab;
    const uint32_t B = m_nBs;
    const uint32_t K = m_nChannels;
    NS_ABORT_MSG_IF(action.size() != static_cast<size_t>(B) * K,
                    "IabNetwork: action has " << action.size() << " entries, expected " << B * K);
    IabFrameResult& res = m_result;
    res = IabFrameResult();
    res.allocation.assign(static_cast<size_t>(B) * K, -1);
    res.sinrDb.assign(static_cast<size_t>(B) * K, -std::numeric_limits<double>::infinity());
    res.deliveredBytesBs.assign(B, 0);
    res.sinrViolationsBs.assign(B, 0);
    res.scheduledBs.assign(B, 0);

    // the rules: masked choices and half-duplex conflicts become idle
    for (uint32_t b = 0; b < B; ++b)
    {
        for (uint32_t k = 0; k < K; ++k)
        {
            const int32_t link = action[b * K + k] - 1;
            if (link < 0)
            {
                continue;
            }
            const bool ok = link < static_cast<int32_t>(m_nLinks) && m_allowed[G(b, link)] &&
                            !m_incumbentSeen[k];
            if (ok)
            {
                res.allocation[b * K + k] = link;
            }
            else
            {
                ++res.invalidActions;
            }
        }
    }
    for (uint32_t i = 0; i < m_maxIab; ++i)
    {
        for (uint32_t k = 0; k < K; ++k)
        {
            bool receives = false;
            for (uint32_t b = 0; b < B; ++b)
            {
                receives = receives || res.allocation[b * K + k] == static_cast<int32_t>(i);
            }
            if (receives && res.allocation[(i + 1) * K + k] >= 0)
            {
                res.allocation[(i + 1) * K + k] = -1;
                ++res.halfDuplexConflicts;
            }
        }
    }

    // incumbents move to this frame's state (Markov on/off per channel)
    const double pOffInc = std::min(1.0, m_inst.frameS / m_inst.incumbentOnMeanS);
    const double act = m_inst.incumbentActivity;
    const double pOnInc = std::min(1.0, pOffInc * act / std::max(1 - act, 1e-9));
    for (uint32_t k = 0; k < K; ++k)
    {
        const double u = ToUniform(HashKeys(m_key, {STREAM_INCUMBENT, m_frame + 1, k}));
        m_incumbent[k] = m_incumbent[k] ? u >= pOffInc : u < pOnInc;
    }

    // SINR and bytes per tick of every scheduled (b, k)
    const bool externalOn = m_external.Exists() && m_external.IsOn(m_key, m_frame);
    m_gains->RefreshSignals();
    std::fill(m_capacity.begin(), m_capacity.end(), 0);
    for (uint32_t b = 0; b < B; ++b)
    {
        for (uint32_t k = 0; k < K; ++k)
        {
            const int32_t l = res.allocation[b * K + k];
            if (l < 0)
            {
                continue;
            }
            const double signal = m_gains->GetGain(l, l, k);
            double interference = 0.0;
            for (uint32_t bp = 0; bp < B; ++bp)
            {
                const int32_t lp = res.allocation[bp * K + k];
                if (bp != b && lp >= 0)
                {
                    interference += m_gains->GetGain(lp, l, k);
                }
            }
            interference += m_incumbent[k] ? m_incumbentMw : 0.0;
            interference += externalOn && m_external.Hits(k) ? m_externalMw[l] : 0.0;
            const double sinrDb =
                10 * std::log10(std::max(signal, 1e-30) / (m_noiseMw[l] + interference));
            res.sinrDb[b * K + k] = sinrDb;
            double se = 0.0;
            if (sinrDb >= m_inst.seMinSinrDb)
            {
                se = std::min(m_inst.seEfficiency * std::log2(1.0 + std::pow(10.0, 0.1 * sinrDb)),
                              m_inst.seCapBpsHz);
            }
            m_capacity[l] += static_cast<int64_t>(std::floor(m_bytesPerTickFactor * se));
            ++res.scheduled;
            res.sinrViolations += sinrDb < m_inst.sinrThresholdDb;
            ++res.scheduledBs[b];
            res.sinrViolationsBs[b] += sinrDb < m_inst.sinrThresholdDb;
            res.incumbentCollisions += m_incumbent[k] ? 1 : 0;
        }
    }

    // traffic of this frame: on/off Markov per UE, Poisson packet counts (normal
    // approximation, rounded, never negative) spread evenly over the ticks
    if (m_inst.offMeanS > 0)
    {
        const double pOff = std::min(1.0, m_inst.frameS / m_inst.onMeanS);
        const double pOn = std::min(1.0, m_inst.frameS / m_inst.offMeanS);
        for (uint32_t u = 0; u < m_nUe; ++u)
        {
            const double x = ToUniform(HashKeys(m_key, {STREAM_ONOFF, m_frame + 1, u}));
            m_onoff[u] = m_onoff[u] ? x >= pOff : x < pOn;
        }
    }
    const double lamOn =
        m_inst.ueRateMbps * 1e6 * m_inst.frameS / (8 * static_cast<double>(m_inst.packetBytes));
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        const double lam = m_onoff[u] ? lamOn : 0.0;
        const double z = ToNormal(HashKeys(m_key, {STREAM_ARRIVALS, m_frame, u}));
        const auto packets =
            static_cast<int64_t>(std::max(0.0, std::nearbyint(lam + std::sqrt(lam) * z)));
        for (uint32_t j = 0; j < m_ticks; ++j)
        {
            const int64_t cum0 = packets * j / m_ticks;
            const int64_t cum1 = packets * (j + 1) / m_ticks;
            m_perTick[u * m_ticks + j] = (cum1 - cum0) * m_inst.packetBytes;
            res.arrivedBytes += m_perTick[u * m_ticks + j];
        }
    }
    m_frameStartPLast = 0;
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        m_frameStartPLast += m_pLast[u];
    }
    std::fill(m_deliveredUe.begin(), m_deliveredUe.end(), 0);
}

void
IabNetwork::Tick(uint32_t j)
{
    const uint32_t slot = static_cast<uint32_t>((m_globalTick + j) % m_budgetTicks);
    int64_t* ring = &m_ring[static_cast<size_t>(slot) * m_nUe];
    std::vector<int64_t> backlog(static_cast<size_t>(m_nUe) * H, 0);
    std::vector<int64_t> total(m_nLinks + 1, 0);
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        m_arrived[u] += m_perTick[u * m_ticks + j];
        const int64_t expiry = ring[u];
        for (uint32_t h = 0; h < H; ++h)
        {
            m_cursor[u * H + h] = std::max(m_cursor[u * H + h], expiry);
        }
        m_pLast[u] = std::max(m_pLast[u], expiry);
        for (uint32_t h = 0; h <= m_lastHop[u]; ++h)
        {
            const int64_t upstream = h == 0 ? m_arrived[u] : m_cursor[u * H + h - 1];
            backlog[u * H + h] = upstream - m_cursor[u * H + h];
            total[m_hopLink[u * H + h]] += backlog[u * H + h];
        }
    }
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        for (uint32_t h = 0; h <= m_lastHop[u]; ++h)
        {
            const int32_t link = m_hopLink[u * H + h];
            const int64_t cap = m_capacity[link];
            const int64_t b = backlog[u * H + h];
            // a backhaul link splits its capacity in proportion to the backlogs of the UEs it
            // carries (float share and truncation, as the fallback); an access link serves one
            int64_t serve;
            if (h == m_lastHop[u])
            {
                serve = std::min(b, cap);
            }
            else
            {
                const double share =
                    std::min(static_cast<double>(cap) /
                                 std::max(static_cast<double>(total[link]), 1.0),
                             1.0);
                serve = static_cast<int64_t>(static_cast<double>(b) * share);
            }
            m_cursor[u * H + h] += serve;
            if (h == m_lastHop[u])
            {
                m_deliveredUe[u] += serve;
                m_pLast[u] += serve;
            }
        }
        ring[u] = m_arrived[u];
    }
}

void
IabNetwork::EndFrame()
{
    NS_LOG_FUNCTION(this << m_frame);
    const uint32_t K = m_nChannels;
    IabFrameResult& res = m_result;
    m_globalTick += m_ticks;
    int64_t pLastSum = 0;
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        pLastSum += m_pLast[u];
        res.deliveredBytes += m_deliveredUe[u];
        res.deliveredBytesBs[m_linkParent[m_maxIab + u]] += m_deliveredUe[u];
    }
    res.droppedBytes = pLastSum - m_frameStartPLast - res.deliveredBytes;

    // observation side effects: last SINR where scheduled, CQI of this frame's channel
    std::fill(m_lastSinr.begin(), m_lastSinr.end(), LAST_SINR_SENTINEL);
    for (uint32_t b = 0; b < m_nBs; ++b)
    {
        for (uint32_t k = 0; k < K; ++k)
        {
            const int32_t l = res.allocation[b * K + k];
            if (l >= 0)
            {
                m_lastSinr[l * K + k] = static_cast<float>(res.sinrDb[b * K + k] / SNR_SCALE_DB);
            }
        }
    }
    for (uint32_t l = 0; l < m_nLinks; ++l)
    {
        for (uint32_t k = 0; k < K && m_linkValid[l]; ++k)
        {
            const double snr = m_gains->GetGain(l, l, k) / m_noiseMw[l];
            m_cqi[l * K + k] =
                static_cast<float>(10 * std::log10(std::max(snr, 1e-30)) / SNR_SCALE_DB);
        }
    }
    m_incumbentSeen =
        SensedIncumbents(m_key, static_cast<int64_t>(m_frame) + 1, m_incumbent,
                         m_inst.incumbentMissProb);

    // reward
    const double offeredBps = (m_inst.ueRateMbps * 1e6 * m_nUe) * OnFraction();
    const double delivered = static_cast<double>(res.deliveredBytes);
    const double dropped = static_cast<double>(res.droppedBytes);
    const double tpNorm = delivered * 8 / m_inst.frameS / std::max(offeredBps, 1.0);
    const double fair = Jain(m_deliveredUe);
    const double schedF = static_cast<double>(std::max<int64_t>(res.scheduled, 1));
    res.reward = m_inst.wThroughput * tpNorm + m_inst.wFairness * fair -
                 m_inst.wSinrViolation * res.sinrViolations / schedF -
                 m_inst.wLatencyViolation * dropped / std::max(delivered + dropped, 1.0) -
                 m_inst.wIncumbentCollision * res.incumbentCollisions / schedF;
    // its split over the deployment's base stations (credit assignment)
    const uint32_t nBsReal = m_inst.nIab + 1;
    res.rewardBs.assign(m_nBs, 0.0);
    double own = 0.0;
    for (uint32_t b = 0; b < nBsReal; ++b)
    {
        res.rewardBs[b] = m_inst.wThroughput * static_cast<double>(res.deliveredBytesBs[b]) * 8 /
                              m_inst.frameS / std::max(offeredBps, 1.0) -
                          m_inst.wSinrViolation * res.sinrViolationsBs[b] / schedF;
        own += res.rewardBs[b];
    }
    for (uint32_t b = 0; b < nBsReal; ++b)
    {
        res.rewardBs[b] += (res.reward - own) / nBsReal;
    }

    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        m_accDeliveredUe[u] += m_deliveredUe[u];
    }
    m_accDropped += res.droppedBytes;
    m_accArrived += res.arrivedBytes;
    m_accScheduled += res.scheduled;
    m_accSinrViolations += res.sinrViolations;
    m_accIncumbent += res.incumbentCollisions;
    m_accHalfDuplex += res.halfDuplexConflicts;
    m_accInvalid += res.invalidActions;
    m_accReward += res.reward;

    ++m_frame;
    if (m_frame % m_inst.geometryUpdateFrames == 0)
    {
        std::vector<double> moved;
        MoveUes(moved);
        ++m_geoIndex;
        UpdateGeometry(moved);
    }
}

void
IabNetwork::LinkQueues(std::vector<double>& backlog, std::vector<double>& holTicks) const
{
    backlog.assign(m_nLinks, 0.0);
    holTicks.assign(m_nLinks, 0.0);
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        for (uint32_t h = 0; h <= m_lastHop[u]; ++h)
        {
            const int64_t upstream = h == 0 ? m_arrived[u] : m_cursor[u * H + h - 1];
            const int64_t bytes = upstream - m_cursor[u * H + h];
            const int32_t link = m_hopLink[u * H + h];
            backlog[link] += static_cast<double>(bytes);
            if (bytes > 0)
            {
                uint32_t passed = 0;
                for (uint32_t s = 0; s < m_budgetTicks; ++s)
                {
                    passed += m_ring[static_cast<size_t>(s) * m_nUe + u] <= m_cursor[u * H + h];
                }
                holTicks[link] =
                    std::max(holTicks[link], static_cast<double>(m_budgetTicks - passed));
            }
        }
    }
}

uint32_t
IabNetwork::GetObservationSize() const
{
    const uint32_t features = 2 + m_nBs + 2 * m_nChannels + 2;
    return m_nLinks * features + m_nChannels + 1;
}

std::vector<float>
IabNetwork::GetObservation() const
{
    const uint32_t B = m_nBs;
    const uint32_t K = m_nChannels;
    const uint32_t features = 2 + B + 2 * K + 2;
    std::vector<float> obs(GetObservationSize(), 0.0F);
    std::vector<double> backlog;
    std::vector<double> hol;
    LinkQueues(backlog, hol);
    for (uint32_t l = 0; l < m_nLinks; ++l)
    {
        if (!m_linkValid[l])
        {
            continue;
        }
        float* row = &obs[static_cast<size_t>(l) * features];
        row[0] = 1.0F;
        row[1] = l < m_maxIab ? 1.0F : 0.0F;
        row[2 + m_linkParent[l]] = 1.0F;
        for (uint32_t k = 0; k < K; ++k)
        {
            row[2 + B + k] = m_cqi[l * K + k];
            row[2 + B + K + k] = m_lastSinr[l * K + k];
        }
        row[2 + B + 2 * K] = static_cast<float>(backlog[l] / BACKLOG_SCALE_BYTES);
        row[3 + B + 2 * K] = static_cast<float>(hol[l] / m_budgetTicks);
    }
    float* glob = &obs[static_cast<size_t>(m_nLinks) * features];
    for (uint32_t k = 0; k < K; ++k)
    {
        glob[k] = m_incumbentSeen[k] ? 1.0F : 0.0F;
    }
    glob[K] = static_cast<float>(static_cast<double>(m_frame) / m_inst.episodeFrames);
    for (float& v : obs)
    {
        v = std::clamp(v, -OBS_BOUND, OBS_BOUND);
    }
    return obs;
}

std::vector<uint32_t>
IabNetwork::GetActionMask() const
{
    const uint32_t choices = 1 + m_nLinks;
    std::vector<uint32_t> mask(static_cast<size_t>(m_nBs) * m_nChannels * choices, 0);
    for (uint32_t b = 0; b < m_nBs; ++b)
    {
        for (uint32_t k = 0; k < m_nChannels; ++k)
        {
            uint32_t* row = &mask[(static_cast<size_t>(b) * m_nChannels + k) * choices];
            row[0] = 1;
            for (uint32_t l = 0; l < m_nLinks && !m_incumbentSeen[k]; ++l)
            {
                row[1 + l] = m_allowed[G(b, l)];
            }
        }
    }
    return mask;
}

int64_t
IabNetwork::GetBytesInQueues() const
{
    int64_t total = 0;
    for (uint32_t u = 0; u < m_nUe; ++u)
    {
        total += m_arrived[u] - m_pLast[u];
    }
    return total;
}

std::string
IabNetwork::GetEpisodeJson() const
{
    nlohmann::json acc;
    acc["delivered_ue"] = m_accDeliveredUe;
    acc["dropped"] = m_accDropped;
    acc["arrived"] = m_accArrived;
    acc["scheduled"] = m_accScheduled;
    acc["sinr_violations"] = m_accSinrViolations;
    acc["incumbent_collisions"] = m_accIncumbent;
    acc["half_duplex"] = m_accHalfDuplex;
    acc["invalid"] = m_accInvalid;
    acc["frames"] = m_frame;
    acc["bytes_in_queues"] = GetBytesInQueues();

    // bridge/metrics.py episode_metrics, for ns3-gym clients that do not recompute them
    const double frames = std::max(1.0, static_cast<double>(m_frame));
    const double duration = frames * m_inst.frameS;
    double delivered = 0.0;
    for (int64_t v : m_accDeliveredUe)
    {
        delivered += static_cast<double>(v);
    }
    const double sched = std::max(1.0, static_cast<double>(m_accScheduled));
    const double handled = std::max(1.0, delivered + static_cast<double>(m_accDropped));
    const double tp = delivered * 8 / duration / 1e6;
    nlohmann::json metrics;
    metrics["throughput_mbps"] = tp;
    metrics["per_ue_throughput_mbps"] = tp / std::max<uint32_t>(m_nUe, 1);
    metrics["sinr_violation_rate"] = m_accSinrViolations / sched;
    metrics["latency_violation_rate"] = m_accDropped / handled;
    metrics["jain_fairness"] = Jain(m_accDeliveredUe);
    metrics["offered_mbps"] = m_accArrived * 8 / duration / 1e6;
    metrics["incumbent_collision_rate"] = m_accIncumbent / sched;
    metrics["half_duplex_conflicts"] = m_accHalfDuplex / frames;
    metrics["invalid_actions"] = m_accInvalid / frames;
    metrics["episode_return"] = m_accReward;

    nlohmann::json out;
    out["accumulators"] = acc;
    out["metrics"] = metrics;
    out["episode_return"] = m_accReward;
    return out.dump();
}

} // namespace ns3
