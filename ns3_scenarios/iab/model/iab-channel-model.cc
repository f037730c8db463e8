// ThreeGppChannelModel with a faster, bit-identical generation of the channel coefficients.
#include "iab-channel-model.h"

#include "ns3/angles.h"
#include "ns3/boolean.h"
#include "ns3/log.h"
#include "ns3/mobility-model.h"
#include "ns3/node.h"
#include "ns3/simulator.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <vector>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("IabThreeGppChannelModel");
NS_OBJECT_ENSURE_REGISTERED(IabThreeGppChannelModel);

namespace
{
// process-wide: the scenario replaces a UE's channel model when the UE has moved far, so a
// per-instance count would be lost with it
uint64_t g_generated = 0;
uint64_t g_verified = 0;

/// Sub-cluster (0, 1, 2) of ray @p m of one of the two strongest clusters, TR 38.901
/// Table 7.5-5 (rays 1-8, 19, 20; 9-12, 17, 18; 13-16, numbered from 1 there).
size_t
SubclusterOfRay(size_t m)
{
    if ((m >= 9 && m <= 12) || m == 17 || m == 18)
    {
        return 1;
    }
    if (m >= 13 && m <= 16)
    {
        return 2;
    }
    return 0;
}

/** A ray's direction cosines, shared by the direct and the grid element phases. */
struct RayDirection
{
    /** The direction cosines of a ray, with the operations of ns-3 3.44's GetNewChannel. */
    RayDirection(double azimuth, double zenith)
    {
        const double sinZenith = sin(zenith);
        const double sinAzimuth = sin(azimuth);
        const double cosAzimuth = cos(azimuth);
        sinCos = sinZenith * cosAzimuth;
        sinSin = sinZenith * sinAzimuth;
        cosZenith = cos(zenith);
    }

    /** The ray's phase (radians) at element location @p l (in wavelengths). */
    double Phase(const Vector& l) const
    {
        return 2 * M_PI * (sinCos * l.x + sinSin * l.y + cosZenith * l.z);
    }

    double sinCos;
    double sinSin;
    double cosZenith;
};

/**
 * exp(j 2 pi (sin(zenith) cos(azimuth) x + sin(zenith) sin(azimuth) y + cos(zenith) z)) of
 * every element location, into re[i * stride], im[i * stride]: the ray's phase at each element
 * (7.5-22), with the operations of ns-3 3.44's GetNewChannel.
 */
void
ElementPhases(double azimuth,
              double zenith,
              const std::vector<Vector>& loc,
              double* re,
              double* im,
              size_t stride)
{
    const RayDirection ray(azimuth, zenith);
    for (size_t i = 0; i < loc.size(); ++i)
    {
        const double phaseDiff = ray.Phase(loc[i]);
        re[i * stride] = cos(phaseDiff);
        im[i * stride] = sin(phaseDiff);
    }
}
/**
 * Whether the element locations of @p antenna form a rows x columns grid through the origin,
 * loc[r * cols + c] = loc[r * cols] + loc[c] with loc[0] = 0 (to 1e-12 wavelengths), as
 * a single-polarised UniformPlanarArray's do: then a ray's phase at element (r, c) is the
 * sum of its phases at (r, 0) and (0, c).
 */
bool
IsOriginGrid(Ptr<const PhasedArrayModel> antenna, const std::vector<Vector>& loc)
{
    const size_t rows = antenna->GetNumRows();
    const size_t cols = antenna->GetNumColumns();
    if (antenna->GetNumPols() != 1 || rows * cols != loc.size() || loc.empty() ||
        loc[0].x != 0.0 || loc[0].y != 0.0 || loc[0].z != 0.0)
    {
        return false;
    }
    for (size_t r = 0; r < rows; ++r)
    {
        for (size_t c = 0; c < cols; ++c)
        {
            const Vector& e = loc[r * cols + c];
            const Vector& a = loc[r * cols];
            const Vector& b = loc[c];
            if (std::abs(e.x - (a.x + b.x)) > 1e-12 || std::abs(e.y - (a.y + b.y)) > 1e-12 ||
                std::abs(e.z - (a.z + b.z)) > 1e-12)
            {
                return false;
            }
        }
    }
    return true;
}

/**
 * ElementPhases for an origin grid (IsOriginGrid): the phase factor of element (r, c) is
 * exp(j phase(r, 0)) exp(j phase(0, c)), so a ray costs rows + cols sine-cosine pairs instead
 * of rows x cols. The same values to within a few units in the last place (not bit-identical
 * to ns-3's direct evaluation).
 */
void
ElementPhasesGrid(double azimuth,
                  double zenith,
                  const std::vector<Vector>& loc,
                  size_t rows,
                  size_t cols,
                  double* re,
                  double* im,
                  size_t stride)
{
    const RayDirection ray(azimuth, zenith);
    double colRe[64];
    double colIm[64];
    NS_ASSERT(cols <= 64);
    for (size_t c = 0; c < cols; ++c)
    {
        const double phase = ray.Phase(loc[c]);
        colRe[c] = cos(phase);
        colIm[c] = sin(phase);
    }
    for (size_t r = 0; r < rows; ++r)
    {
        const double phase = ray.Phase(loc[r * cols]);
        const double rowRe = r == 0 ? 1.0 : cos(phase);
        const double rowIm = r == 0 ? 0.0 : sin(phase);
        for (size_t c = 0; c < cols; ++c)
        {
            const size_t i = (r * cols + c) * stride;
            re[i] = rowRe * colRe[c] - rowIm * colIm[c];
            im[i] = rowRe * colIm[c] + rowIm * colRe[c];
        }
    }
}
} // namespace

/*
 * The products are written out as std::complex computes them for finite values, and the
 * AVX2 clone has no FMA (the build also turns contraction off), so each clone rounds like
 * ns-3's scalar SSE2 code.
 */
__attribute__((target_clones("avx2", "default"))) void
AccumulateWeightedRows(const std::complex<double>* __restrict w,
                       size_t rows,
                       const double* __restrict xRe,
                       const double* __restrict xIm,
                       size_t n,
                       double* __restrict re,
                       double* __restrict im,
                       const uint8_t* __restrict target)
{
    for (size_t r = 0; r < rows; ++r)
    {
        const double wr = w[r].real();
        const double wi = w[r].imag();
        const size_t offset = target != nullptr ? target[r] * n : 0;
        double* __restrict outRe = re + offset;
        double* __restrict outIm = im + offset;
        const double* __restrict rowRe = xRe + r * n;
        const double* __restrict rowIm = xIm + r * n;
        for (size_t i = 0; i < n; ++i)
        {
            outRe[i] += wr * rowRe[i] - wi * rowIm[i];
            outIm[i] += wr * rowIm[i] + wi * rowRe[i];
        }
    }
}

TypeId
IabThreeGppChannelModel::GetTypeId()
{
    static TypeId tid =
        TypeId("ns3::IabThreeGppChannelModel")
            .SetParent<ThreeGppChannelModel>()
            .SetGroupName("Iab")
            .AddConstructor<IabThreeGppChannelModel>()
            .AddAttribute("FastGeneration",
                          "Generate the channel coefficients with the element phase terms "
                          "factored out (bit-identical); false: ns-3's own GetNewChannel",
                          BooleanValue(true),
                          MakeBooleanAccessor(&IabThreeGppChannelModel::m_fastGeneration),
                          MakeBooleanChecker())
            .AddAttribute("VerifyAgainstBase",
                          "Also run ns-3's GetNewChannel for every matrix and abort unless the "
                          "two are equal bit for bit (a test switch: it costs ns-3's time)",
                          BooleanValue(false),
                          MakeBooleanAccessor(&IabThreeGppChannelModel::m_verifyAgainstBase),
                          MakeBooleanChecker())
            .AddAttribute("GridPhases",
                          "Fast generation: a ray's phase factor at element (row, column) of a "
                          "planar array as the product of its factors at (row, 0) and (0, "
                          "column), rows + columns sine-cosine pairs per ray instead of rows x "
                          "columns; equal to ns-3's direct evaluation to within rounding, not "
                          "bit for bit (false: ns-3's evaluation, bit-identical matrices)",
                          BooleanValue(true),
                          MakeBooleanAccessor(&IabThreeGppChannelModel::m_gridPhases),
                          MakeBooleanChecker());
    return tid;
}

IabThreeGppChannelModel::IabThreeGppChannelModel() = default;

IabThreeGppChannelModel::~IabThreeGppChannelModel() = default;

uint64_t
IabThreeGppChannelModel::GetGeneratedCount()
{
    return g_generated;
}

uint64_t
IabThreeGppChannelModel::GetVerifiedCount()
{
    return g_verified;
}

Ptr<MatrixBasedChannelModel::ChannelMatrix>
IabThreeGppChannelModel::GetNewChannel(Ptr<const ThreeGppChannelParams> channelParams,
                                       Ptr<const ParamsTable> table3gpp,
                                       const Ptr<const MobilityModel> sMob,
                                       const Ptr<const MobilityModel> uMob,
                                       Ptr<const PhasedArrayModel> sAntenna,
                                       Ptr<const PhasedArrayModel> uAntenna) const
{
    ++g_generated;
    if (!m_fastGeneration)
    {
        return ThreeGppChannelModel::GetNewChannel(channelParams,
                                                   table3gpp,
                                                   sMob,
                                                   uMob,
                                                   sAntenna,
                                                   uAntenna);
    }
    NS_ASSERT_MSG(m_frequency > 0.0, "Set the operating frequency first!");
    auto matrix = Create<ChannelMatrix>();
    matrix->m_generatedTime = Simulator::Now();
    matrix->m_nodeIds =
        std::make_pair(sMob->GetObject<Node>()->GetId(), uMob->GetObject<Node>()->GetId());
    const bool sameDirection = channelParams->m_nodeIds == matrix->m_nodeIds;
    // the two strongest clusters are split in three sub-clusters each (one if they coincide)
    const size_t reduced = channelParams->m_reducedClusterNumber;
    const size_t pages =
        channelParams->m_cluster1st != channelParams->m_cluster2nd ? reduced + 4 : reduced + 2;
    Complex3DVector h(uAntenna->GetNumElems(), sAntenna->GetNumElems(), pages);
    ClusterCoefficients(channelParams, table3gpp, sameDirection, sAntenna, uAntenna, h);
    if (channelParams->m_losCondition == ChannelCondition::LOS)
    {
        AddLosRay(channelParams, sMob, uMob, sAntenna, uAntenna, h);
    }
    if (m_verifyAgainstBase)
    {
        Verify(h, channelParams, table3gpp, sMob, uMob, sAntenna, uAntenna);
    }
    matrix->m_channel = std::move(h);
    return matrix;
}

std::vector<std::complex<double>>
IabThreeGppChannelModel::PolarisationTerms(Ptr<const ThreeGppChannelParams> params,
                                           size_t nRays,
                                           Ptr<const PhasedArrayModel> sAntenna,
                                           Ptr<const PhasedArrayModel> uAntenna) const
{
    // the field patterns at the parameters' own (unswapped) angles, as ns-3 3.44 evaluates them
    using C = std::complex<double>;
    const size_t nClusters = params->m_reducedClusterNumber;
    const size_t nPolS = sAntenna->GetNumPols();
    const size_t nPolU = uAntenna->GetNumPols();
    std::vector<C> rayTerm(nClusters * nRays * nPolS * nPolU);
    for (size_t n = 0; n < nClusters; ++n)
    {
        for (size_t m = 0; m < nRays; ++m)
        {
            const DoubleVector& phase = params->m_clusterPhase[n][m];
            const double k = params->m_crossPolarizationPowerRatios[n][m];
            for (size_t pu = 0; pu < nPolU; ++pu)
            {
                const auto [rxPhi, rxTheta] = uAntenna->GetElementFieldPattern(
                    Angles(params->m_rayAoaRadian[n][m], params->m_rayZoaRadian[n][m]), pu);
                for (size_t ps = 0; ps < nPolS; ++ps)
                {
                    const auto [txPhi, txTheta] = sAntenna->GetElementFieldPattern(
                        Angles(params->m_rayAodRadian[n][m], params->m_rayZodRadian[n][m]), ps);
                    rayTerm[((n * nRays + m) * nPolS + ps) * nPolU + pu] =
                        C(cos(phase[0]), sin(phase[0])) * rxTheta * txTheta +
                        C(cos(phase[1]), sin(phase[1])) * std::sqrt(1.0 / k) * rxTheta * txPhi +
                        C(cos(phase[2]), sin(phase[2])) * std::sqrt(1.0 / k) * rxPhi * txTheta +
                        C(cos(phase[3]), sin(phase[3])) * rxPhi * txPhi;
                }
            }
        }
    }

    return rayTerm;
}

void
IabThreeGppChannelModel::ClusterCoefficients(Ptr<const ThreeGppChannelParams> params,
                                             Ptr<const ParamsTable> table3gpp,
                                             bool sameDirection,
                                             Ptr<const PhasedArrayModel> sAntenna,
                                             Ptr<const PhasedArrayModel> uAntenna,
                                             Complex3DVector& h) const
{
    using C = std::complex<double>;
    const size_t nU = uAntenna->GetNumElems();
    const size_t nS = sAntenna->GetNumElems();
    const size_t nClusters = params->m_reducedClusterNumber;
    const size_t nRays = table3gpp->m_raysPerCluster;
    const size_t nPolS = sAntenna->GetNumPols();
    const size_t nPolU = uAntenna->GetNumPols();
    // arrival at u, departure at s: the parameters' angles swapped if they were drawn b -> a
    const auto& aoa = sameDirection ? params->m_rayAoaRadian : params->m_rayAodRadian;
    const auto& zoa = sameDirection ? params->m_rayZoaRadian : params->m_rayZodRadian;
    const auto& aod = sameDirection ? params->m_rayAodRadian : params->m_rayAoaRadian;
    const auto& zod = sameDirection ? params->m_rayZodRadian : params->m_rayZoaRadian;
    std::vector<Vector> uLoc(nU);
    std::vector<Vector> sLoc(nS);
    std::vector<uint8_t> uPol(nU);
    std::vector<uint8_t> sPol(nS);
    for (size_t u = 0; u < nU; ++u)
    {
        uLoc[u] = uAntenna->GetElementLocation(u);
        uPol[u] = uAntenna->GetElemPol(u);
    }
    for (size_t s = 0; s < nS; ++s)
    {
        sLoc[s] = sAntenna->GetElementLocation(s);
        sPol[s] = sAntenna->GetElemPol(s);
    }

    const std::vector<C> rayTerm = PolarisationTerms(params, nRays, sAntenna, uAntenna);

    std::vector<double> rxRe(nU * nRays);        // [u][m]: rx phase of the current cluster
    std::vector<double> rxIm(nU * nRays);
    std::vector<double> txRe(nRays * nS);        // [m][s]: tx phase, real and imaginary
    std::vector<double> txIm(nRays * nS);
    std::vector<C> rxWeighted(nPolS * nRays);    // [tx pol][m]: ray term x rx phase
    std::vector<double> accRe(3 * nS);           // [sub-cluster][s]
    std::vector<double> accIm(3 * nS);
    std::vector<uint8_t> subcluster(nRays);
    for (size_t m = 0; m < nRays; ++m)
    {
        subcluster[m] = static_cast<uint8_t>(SubclusterOfRay(m));
    }
    size_t subAdded = 0;
    const bool uGrid = m_gridPhases && IsOriginGrid(uAntenna, uLoc) && uAntenna->GetNumColumns() <= 64;
    const bool sGrid = m_gridPhases && IsOriginGrid(sAntenna, sLoc) && sAntenna->GetNumColumns() <= 64;
    for (size_t n = 0; n < nClusters; ++n)
    {
        for (size_t m = 0; m < nRays; ++m)
        {
            if (uGrid)
            {
                ElementPhasesGrid(aoa[n][m], zoa[n][m], uLoc, uAntenna->GetNumRows(),
                                  uAntenna->GetNumColumns(), rxRe.data() + m, rxIm.data() + m,
                                  nRays);
            }
            else
            {
                ElementPhases(aoa[n][m], zoa[n][m], uLoc, rxRe.data() + m, rxIm.data() + m,
                              nRays);
            }
            if (sGrid)
            {
                ElementPhasesGrid(aod[n][m], zod[n][m], sLoc, sAntenna->GetNumRows(),
                                  sAntenna->GetNumColumns(), txRe.data() + m * nS,
                                  txIm.data() + m * nS, 1);
            }
            else
            {
                ElementPhases(aod[n][m], zod[n][m], sLoc, txRe.data() + m * nS,
                              txIm.data() + m * nS, 1);
            }
        }
        const bool split = n == params->m_cluster1st || n == params->m_cluster2nd;
        const double scale = sqrt(params->m_clusterPower[n] / table3gpp->m_raysPerCluster);
        for (size_t u = 0; u < nU; ++u)
        {
            for (size_t ps = 0; ps < nPolS; ++ps)
            {
                for (size_t m = 0; m < nRays; ++m)
                {
                    rxWeighted[ps * nRays + m] =
                        rayTerm[((n * nRays + m) * nPolS + ps) * nPolU + uPol[u]] *
                        C(rxRe[u * nRays + m], rxIm[u * nRays + m]);
                }
            }
            std::fill(accRe.begin(), accRe.end(), 0.0);
            std::fill(accIm.begin(), accIm.end(), 0.0);
            // each (s, sub-cluster) sum adds its rays in ns-3's order (m = 0, 1, ...); the
            // complex product written out is what std::complex computes for finite values
            if (nPolS == 1)
            {
                AccumulateWeightedRows(rxWeighted.data(), nRays, txRe.data(), txIm.data(), nS,
                                       accRe.data(), accIm.data(),
                                       split ? subcluster.data() : nullptr);
            }
            for (size_t m = 0; m < nRays && nPolS > 1; ++m)
            {
                const size_t sub = split ? subcluster[m] : 0;
                double* re = accRe.data() + sub * nS;
                double* im = accIm.data() + sub * nS;
                const double* tr = txRe.data() + m * nS;
                const double* ti = txIm.data() + m * nS;
                for (size_t s = 0; s < nS; ++s)
                {
                    const C w = rxWeighted[sPol[s] * nRays + m];
                    re[s] += w.real() * tr[s] - w.imag() * ti[s];
                    im[s] += w.real() * ti[s] + w.imag() * tr[s];
                }
            }
            const size_t nSub = split ? 3 : 1;
            for (size_t sub = 0; sub < nSub; ++sub)
            {
                const size_t page = sub == 0 ? n : nClusters + subAdded + sub - 1;
                C* out = h.GetPagePtr(page);
                for (size_t s = 0; s < nS; ++s)
                {
                    C rays(accRe[sub * nS + s], accIm[sub * nS + s]);
                    rays *= scale;
                    out[s * nU + u] = rays;
                }
            }
        }
        if (split)
        {
            subAdded += 2;
        }
    }
}

void
IabThreeGppChannelModel::AddLosRay(Ptr<const ThreeGppChannelParams> params,
                                   const Ptr<const MobilityModel> sMob,
                                   const Ptr<const MobilityModel> uMob,
                                   Ptr<const PhasedArrayModel> sAntenna,
                                   Ptr<const PhasedArrayModel> uAntenna,
                                   Complex3DVector& h) const
{
    using C = std::complex<double>;
    const size_t nU = uAntenna->GetNumElems();
    const size_t nS = sAntenna->GetNumElems();
    const Vector sPos = sMob->GetPosition();
    const Vector uPos = uMob->GetPosition();
    const double x = sPos.x - uPos.x;
    const double y = sPos.y - uPos.y;
    const double distance2D = sqrt(x * x + y * y);
    const double hUt = std::min(sPos.z, uPos.z);
    const double hBs = std::max(sPos.z, uPos.z);
    const double distance3D = std::sqrt(distance2D * distance2D + (hBs - hUt) * (hBs - hUt));
    const Angles sAngle(uPos, sPos);
    const Angles uAngle(sPos, uPos);
    const double lambda = 3.0e8 / m_frequency;
    const C phaseDiffDueToDistance(cos(-2 * M_PI * distance3D / lambda),
                                   sin(-2 * M_PI * distance3D / lambda));
    const double sinUAngleIncl = sin(uAngle.GetInclination());
    const double cosUAngleIncl = cos(uAngle.GetInclination());
    const double sinUAngleAz = sin(uAngle.GetAzimuth());
    const double cosUAngleAz = cos(uAngle.GetAzimuth());
    const double sinSAngleIncl = sin(sAngle.GetInclination());
    const double cosSAngleIncl = cos(sAngle.GetInclination());
    const double sinSAngleAz = sin(sAngle.GetAzimuth());
    const double cosSAngleAz = cos(sAngle.GetAzimuth());

    // field patterns toward the LOS direction per polarisation, tx phases per element
    const size_t nPolS = sAntenna->GetNumPols();
    std::vector<std::pair<double, double>> txField(nPolS);
    for (size_t ps = 0; ps < nPolS; ++ps)
    {
        txField[ps] = sAntenna->GetElementFieldPattern(
            Angles(sAngle.GetAzimuth(), sAngle.GetInclination()), ps);
    }
    std::vector<C> txPhase(nS);
    std::vector<uint8_t> sPol(nS);
    for (size_t s = 0; s < nS; ++s)
    {
        const Vector sLoc = sAntenna->GetElementLocation(s);
        const double txPhaseDiff =
            2 * M_PI *
            (sinSAngleIncl * cosSAngleAz * sLoc.x + sinSAngleIncl * sinSAngleAz * sLoc.y +
             cosSAngleIncl * sLoc.z);
        txPhase[s] = C(cos(txPhaseDiff), sin(txPhaseDiff));
        sPol[s] = sAntenna->GetElemPol(s);
    }
    const double kLinear = pow(10, params->m_K_factor / 10.0);
    const double diffuse = sqrt(1.0 / (kLinear + 1));
    const double specular = sqrt(kLinear / (1 + kLinear));
    const double blockage = pow(10, params->m_attenuation_dB[0] / 10.0);
    std::vector<C> rxPart(nPolS); // [tx pol]: (field product x distance phase) x rx phase
    for (size_t u = 0; u < nU; ++u)
    {
        const Vector uLoc = uAntenna->GetElementLocation(u);
        const double rxPhaseDiff =
            2 * M_PI *
            (sinUAngleIncl * cosUAngleAz * uLoc.x + sinUAngleIncl * sinUAngleAz * uLoc.y +
             cosUAngleIncl * uLoc.z);
        const C rxE(cos(rxPhaseDiff), sin(rxPhaseDiff));
        const auto [rxPhi, rxTheta] = uAntenna->GetElementFieldPattern(
            Angles(uAngle.GetAzimuth(), uAngle.GetInclination()), uAntenna->GetElemPol(u));
        for (size_t ps = 0; ps < nPolS; ++ps)
        {
            const auto [txPhi, txTheta] = txField[ps];
            rxPart[ps] = (rxTheta * txTheta - rxPhi * txPhi) * phaseDiffDueToDistance * rxE;
        }
        for (size_t s = 0; s < nS; ++s)
        {
            const C ray = rxPart[sPol[s]] * txPhase[s];
            C* first = h.GetPagePtr(0) + s * nU + u;
            *first = diffuse * *first + specular * ray / blockage;
            for (size_t n = 1; n < h.GetNumPages(); ++n)
            {
                h.GetPagePtr(n)[s * nU + u] *= diffuse;
            }
        }
    }
}

void
IabThreeGppChannelModel::Verify(const Complex3DVector& h,
                                Ptr<const ThreeGppChannelParams> channelParams,
                                Ptr<const ParamsTable> table3gpp,
                                const Ptr<const MobilityModel> sMob,
                                const Ptr<const MobilityModel> uMob,
                                Ptr<const PhasedArrayModel> sAntenna,
                                Ptr<const PhasedArrayModel> uAntenna) const
{
    const Ptr<ChannelMatrix> base = ThreeGppChannelModel::GetNewChannel(channelParams,
                                                                        table3gpp,
                                                                        sMob,
                                                                        uMob,
                                                                        sAntenna,
                                                                        uAntenna);
    const Complex3DVector& ref = base->m_channel;
    NS_ABORT_MSG_IF(ref.GetNumRows() != h.GetNumRows() || ref.GetNumCols() != h.GetNumCols() ||
                        ref.GetNumPages() != h.GetNumPages(),
                    "IabThreeGppChannelModel: matrix shape differs from ns-3's");
    double maxDiff = 0.0;
    size_t differing = 0;
    for (size_t c = 0; c < h.GetNumPages(); ++c)
    {
        const std::complex<double>* a = h.GetPagePtr(c);
        const std::complex<double>* b = ref.GetPagePtr(c);
        for (size_t i = 0; i < h.GetNumRows() * h.GetNumCols(); ++i)
        {
            if (std::memcmp(&a[i], &b[i], sizeof(a[i])) != 0)
            {
                ++differing;
                maxDiff = std::max(maxDiff, std::abs(a[i] - b[i]));
            }
        }
    }
    // grid phases round differently from ns-3's direct evaluation: there, every coefficient
    // must agree to 1e-12 of the matrix's largest magnitude; otherwise bit for bit
    double maxAbs = 0.0;
    for (size_t c = 0; c < ref.GetNumPages(); ++c)
    {
        const std::complex<double>* b = ref.GetPagePtr(c);
        for (size_t i = 0; i < ref.GetNumRows() * ref.GetNumCols(); ++i)
        {
            maxAbs = std::max(maxAbs, std::abs(b[i]));
        }
    }
    const bool exact = !m_gridPhases;
    NS_ABORT_MSG_IF(exact ? differing > 0 : maxDiff > 1e-12 * maxAbs,
                    "IabThreeGppChannelModel: " << differing << " of " << h.GetSize()
                                                << " coefficients differ from ns-3's "
                                                   "GetNewChannel (max |difference| "
                                                << maxDiff << ", largest |coefficient| "
                                                << maxAbs << ")");
    ++g_verified;
}

} // namespace ns3
