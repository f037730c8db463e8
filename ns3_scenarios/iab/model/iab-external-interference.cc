// Hidden per-deployment conditions: an external co-channel interferer and imperfect sensing.
#include "iab-external-interference.h"

#include "iab-link-gain-model.h"
#include "iab-rng.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace ns3
{

namespace
{
constexpr double SPEED_OF_LIGHT_MPS = 299792458.0;

/// |sum_{i<n} exp(2j i x)|^2 = sin^2(n x) / sin^2(x), n^2 at x -> 0 (as the fallback).
double
DirichletSq(double x, uint32_t n)
{
    const double s = std::sin(x);
    if (std::fabs(s) < 1e-6)
    {
        return static_cast<double>(n) * n;
    }
    const double ratio = std::sin(n * x) / s;
    return ratio * ratio;
}

Vector
Unit(const Vector& v)
{
    const double norm = std::max(std::sqrt(v.x * v.x + v.y * v.y + v.z * v.z), 1e-9);
    return Vector(v.x / norm, v.y / norm, v.z / norm);
}
} // namespace

double
UmiPathLossDb(double d2dM, double hBsM, double hUtM, double fcGhz, bool los)
{
    const double d2d = std::clamp(d2dM, 10.0, 5000.0);
    const double d3d = std::sqrt(d2d * d2d + (hBsM - hUtM) * (hBsM - hUtM));
    const double dBp = 4.0 * (hBsM - 1.0) * (hUtM - 1.0) * fcGhz * 1e9 / SPEED_OF_LIGHT_MPS;
    const double logFc = std::log10(fcGhz);
    const double pl1 = 32.4 + 21.0 * std::log10(d3d) + 20.0 * logFc;
    const double pl2 = 32.4 + 40.0 * std::log10(d3d) + 20.0 * logFc -
                       9.5 * std::log10(dBp * dBp + (hBsM - hUtM) * (hBsM - hUtM));
    const double plLos = d2d <= dBp ? pl1 : pl2;
    if (los)
    {
        return plLos;
    }
    const double plNlos = 35.3 * std::log10(d3d) + 22.4 + 21.3 * logFc - 0.3 * (hUtM - 1.5);
    return std::max(plLos, plNlos);
}

double
UmiMeanPathLossDb(double d2dM, double hBsM, double hUtM, double fcGhz)
{
    const double p = UmiLosProbability(d2dM);
    const double gLos = std::pow(10.0, -UmiPathLossDb(d2dM, hBsM, hUtM, fcGhz, true) / 10);
    const double gNlos = std::pow(10.0, -UmiPathLossDb(d2dM, hBsM, hUtM, fcGhz, false) / 10);
    return -10 * std::log10(p * gLos + (1 - p) * gNlos);
}

double
UpaGainLin(const Vector& direction, const Vector& boresight, uint32_t rows, uint32_t cols)
{
    // panel axes: y' = z x b / |z x b| (horizontal), z' = b x y' (up)
    double horiz = std::sqrt(boresight.x * boresight.x + boresight.y * boresight.y);
    horiz = horiz < 1e-12 ? 1.0 : horiz;
    const double yx = -boresight.y / horiz;
    const double yy = boresight.x / horiz;
    const double zx = -boresight.z * yy;
    const double zy = boresight.z * yx;
    const double zz = boresight.x * yy - boresight.y * yx;
    const double p = direction.x * yx + direction.y * yy;
    const double q = direction.x * zx + direction.y * zy + direction.z * zz;
    const double halfPi = 0.5 * M_PI;
    return DirichletSq(halfPi * p, cols) * DirichletSq(halfPi * q, rows) / (rows * cols);
}

IabExternalInterferer::IabExternalInterferer(const IabScenarioInstance& inst)
    : m_nChannels(inst.externalBlockChannels),
      m_eirpDbm(inst.externalEirpDbm),
      m_activity(inst.externalActivity),
      m_carrierGhz(inst.carrierGhz)
{
    using namespace iab;
    const uint64_t key = SeedKey(inst.seed);
    double u[3];
    for (int64_t i = 0; i < 3; ++i)
    {
        u[i] = ToUniform(HashKeys(key, {STREAM_DEPLOYMENT, 0, i}));
    }
    const uint32_t starts = inst.nChannels - m_nChannels + 1;
    m_firstChannel = std::min(static_cast<uint32_t>(u[0] * starts), starts - 1);
    const double half = inst.areaM / 2;
    m_xyz = Vector((2 * u[1] - 1) * half, (2 * u[2] - 1) * half, inst.bsHeightM);
}

bool
IabExternalInterferer::IsOn(uint64_t episodeKey, int64_t frame) const
{
    using namespace iab;
    return ToUniform(HashKeys(episodeKey, {STREAM_EXTERNAL, frame})) < m_activity;
}

double
IabExternalInterferer::ReceivedPowerMw(const Vector& rx, const Vector& parent, uint32_t rows,
                                       uint32_t cols) const
{
    const double d2d = std::hypot(rx.x - m_xyz.x, rx.y - m_xyz.y);
    const double lossDb = UmiMeanPathLossDb(d2d, m_xyz.z, rx.z, m_carrierGhz);
    const Vector toward = Unit(Vector(m_xyz.x - rx.x, m_xyz.y - rx.y, m_xyz.z - rx.z));
    const Vector bore = Unit(Vector(parent.x - rx.x, parent.y - rx.y, parent.z - rx.z));
    return std::pow(10.0, (m_eirpDbm - lossDb) / 10) * UpaGainLin(toward, bore, rows, cols);
}

std::vector<uint8_t>
SensedIncumbents(uint64_t episodeKey,
                 int64_t stateIndex,
                 const std::vector<uint8_t>& incumbent,
                 double missProb)
{
    using namespace iab;
    std::vector<uint8_t> seen(incumbent.size(), 0);
    for (size_t k = 0; k < incumbent.size(); ++k)
    {
        const double u = ToUniform(
            HashKeys(episodeKey, {STREAM_SENSING, stateIndex, static_cast<int64_t>(k)}));
        seen[k] = incumbent[k] && !(u < missProb);
    }
    return seen;
}

std::string
ExternalReportJson(const IabScenarioInstance& inst)
{
    const IabExternalInterferer ext(inst);
    nlohmann::json power = nlohmann::json::array();
    for (uint32_t i = 0; i < inst.nIab; ++i)
    {
        power.push_back({{"link", i},
                         {"power_mw",
                          ext.ReceivedPowerMw(inst.bsXyz[i + 1],
                                              inst.bsXyz[inst.iabParent[i]],
                                              inst.bsArrayRows,
                                              inst.bsArrayCols)}});
    }
    for (uint32_t u = 0; u < inst.nUe; ++u)
    {
        power.push_back({{"link", inst.maxIab + u},
                         {"power_mw",
                          ext.ReceivedPowerMw(inst.ueXyz[u],
                                              inst.bsXyz[inst.ueParent[u]],
                                              inst.ueArrayRows,
                                              inst.ueArrayCols)}});
    }
    const Vector& p = ext.GetPosition();
    nlohmann::json out;
    out["xyz"] = {p.x, p.y, p.z};
    out["first_channel"] = ext.GetFirstChannel();
    out["n_channels"] = ext.GetNumChannels();
    out["receivers"] = power;
    return out.dump();
}

} // namespace ns3
