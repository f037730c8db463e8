// OpenGym spaces: Discrete, Box, Tuple and Dict, convertible to ns3opengym.SpaceDescription.
#ifndef IABMETA_OPENGYM_SPACE_H
#define IABMETA_OPENGYM_SPACE_H

#include "ns3opengym.pb.h"

#include "ns3/object.h"
#include "ns3/ptr.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace ns3
{

/**
 * Base class of the observation and action spaces a scenario announces at the handshake.
 */
class OpenGymSpace : public Object
{
  public:
    static TypeId GetTypeId();

    /// Write this space (with its Any-packed parameters) into @p out.
    virtual void FillSpaceDescription(ns3opengym::SpaceDescription* out) const = 0;
    /// Print a gym-like description, e.g. "Box(0, 1, (4,), float32)".
    virtual void Print(std::ostream& os) const = 0;

    ns3opengym::SpaceDescription GetSpaceDescription() const;
};

std::ostream& operator<<(std::ostream& os, const Ptr<OpenGymSpace>& space);

/// {0, 1, ..., n-1}
class OpenGymDiscreteSpace : public OpenGymSpace
{
  public:
    static TypeId GetTypeId();
    OpenGymDiscreteSpace();
    explicit OpenGymDiscreteSpace(int32_t n);

    int32_t GetN() const;
    void FillSpaceDescription(ns3opengym::SpaceDescription* out) const override;
    void Print(std::ostream& os) const override;

  private:
    int32_t m_n{1};
};

/// Array of a fixed shape; low and high are scalars on the wire (the same for every element).
class OpenGymBoxSpace : public OpenGymSpace
{
  public:
    static TypeId GetTypeId();
    OpenGymBoxSpace();
    /// @param dtype one of "int32", "uint32", "float32"/"float", "float64"/"double".
    OpenGymBoxSpace(float low, float high, std::vector<uint32_t> shape, const std::string& dtype);
    OpenGymBoxSpace(float low, float high, std::vector<uint32_t> shape, ns3opengym::Dtype dtype);

    float GetLow() const;
    float GetHigh() const;
    const std::vector<uint32_t>& GetShape() const;
    ns3opengym::Dtype GetDtype() const;
    /// Number of elements (product of the shape).
    uint64_t GetSize() const;
    void FillSpaceDescription(ns3opengym::SpaceDescription* out) const override;
    void Print(std::ostream& os) const override;

    /// Parse "int32", "uint32", "float32", "float64" (also "int", "uint", "float", "double").
    static ns3opengym::Dtype ParseDtype(const std::string& name);
    static std::string DtypeName(ns3opengym::Dtype dtype);

  private:
    float m_low{0};
    float m_high{0};
    std::vector<uint32_t> m_shape;
    ns3opengym::Dtype m_dtype{ns3opengym::FLOAT};
};

/// Ordered sequence of sub-spaces.
class OpenGymTupleSpace : public OpenGymSpace
{
  public:
    static TypeId GetTypeId();
    OpenGymTupleSpace();

    void Add(Ptr<OpenGymSpace> space);
    Ptr<OpenGymSpace> Get(uint32_t index) const;
    uint32_t GetN() const;
    void FillSpaceDescription(ns3opengym::SpaceDescription* out) const override;
    void Print(std::ostream& os) const override;

  protected:
    void DoDispose() override;

  private:
    std::vector<Ptr<OpenGymSpace>> m_elements;
};

/// Named sub-spaces, in insertion order.
class OpenGymDictSpace : public OpenGymSpace
{
  public:
    static TypeId GetTypeId();
    OpenGymDictSpace();

    /// Add (or replace) the sub-space @p key.
    void Add(const std::string& key, Ptr<OpenGymSpace> space);
    /// The sub-space @p key, or nullptr.
    Ptr<OpenGymSpace> Get(const std::string& key) const;
    std::vector<std::string> GetKeys() const;
    void FillSpaceDescription(ns3opengym::SpaceDescription* out) const override;
    void Print(std::ostream& os) const override;

  protected:
    void DoDispose() override;

  private:
    std::vector<std::pair<std::string, Ptr<OpenGymSpace>>> m_elements;
};

} // namespace ns3

#endif
