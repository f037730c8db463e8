// OpenGym spaces: Discrete, Box, Tuple and Dict, convertible to ns3opengym.SpaceDescription.
#include "opengym-space.h"

#include "ns3/abort.h"
#include "ns3/log.h"

#include <numeric>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("OpenGymSpace");

NS_OBJECT_ENSURE_REGISTERED(OpenGymSpace);
NS_OBJECT_ENSURE_REGISTERED(OpenGymDiscreteSpace);
NS_OBJECT_ENSURE_REGISTERED(OpenGymBoxSpace);
NS_OBJECT_ENSURE_REGISTERED(OpenGymTupleSpace);
NS_OBJECT_ENSURE_REGISTERED(OpenGymDictSpace);

TypeId
OpenGymSpace::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymSpace").SetParent<Object>().SetGroupName("OpenGym");
    return tid;
}

ns3opengym::SpaceDescription
OpenGymSpace::GetSpaceDescription() const
{
    ns3opengym::SpaceDescription desc;
    FillSpaceDescription(&desc);
    return desc;
}

std::ostream&
operator<<(std::ostream& os, const Ptr<OpenGymSpace>& space)
{
    if (space)
    {
        space->Print(os);
    }
    else
    {
        os << "(null space)";
    }
    return os;
}

// ---- Discrete -----------------------------------------------------------------------------

TypeId
OpenGymDiscreteSpace::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymDiscreteSpace")
                            .SetParent<OpenGymSpace>()
                            .SetGroupName("OpenGym")
                            .AddConstructor<OpenGymDiscreteSpace>();
    return tid;
}

OpenGymDiscreteSpace::OpenGymDiscreteSpace() = default;

OpenGymDiscreteSpace::OpenGymDiscreteSpace(int32_t n)
    : m_n(n)
{
    NS_ABORT_MSG_IF(n <= 0, "OpenGymDiscreteSpace: n=" << n << ", expected n >= 1");
}

int32_t
OpenGymDiscreteSpace::GetN() const
{
    return m_n;
}

void
OpenGymDiscreteSpace::FillSpaceDescription(ns3opengym::SpaceDescription* out) const
{
    ns3opengym::DiscreteSpace space;
    space.set_n(m_n);
    out->set_type(ns3opengym::Discrete);
    out->mutable_space()->PackFrom(space);
}

void
OpenGymDiscreteSpace::Print(std::ostream& os) const
{
    os << "Discrete(" << m_n << ")";
}

// ---- Box ----------------------------------------------------------------------------------

TypeId
OpenGymBoxSpace::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymBoxSpace")
                            .SetParent<OpenGymSpace>()
                            .SetGroupName("OpenGym")
                            .AddConstructor<OpenGymBoxSpace>();
    return tid;
}

OpenGymBoxSpace::OpenGymBoxSpace() = default;

OpenGymBoxSpace::OpenGymBoxSpace(float low,
                                 float high,
                                 std::vector<uint32_t> shape,
                                 const std::string& dtype)
    : OpenGymBoxSpace(low, high, std::move(shape), ParseDtype(dtype))
{
}

OpenGymBoxSpace::OpenGymBoxSpace(float low,
                                 float high,
                                 std::vector<uint32_t> shape,
                                 ns3opengym::Dtype dtype)
    : m_low(low),
      m_high(high),
      m_shape(std::move(shape)),
      m_dtype(dtype)
{
    NS_ABORT_MSG_IF(!(low <= high),
                    "OpenGymBoxSpace: low=" << low << " high=" << high << ", expected low <= high");
    NS_ABORT_MSG_IF(dtype == ns3opengym::NoDType,
                    "OpenGymBoxSpace: dtype NoDType, expected INT, UINT, FLOAT or DOUBLE");
}

ns3opengym::Dtype
OpenGymBoxSpace::ParseDtype(const std::string& name)
{
    if (name == "int32" || name == "int" || name == "int32_t")
    {
        return ns3opengym::INT;
    }
    if (name == "uint32" || name == "uint" || name == "uint32_t")
    {
        return ns3opengym::UINT;
    }
    if (name == "float32" || name == "float")
    {
        return ns3opengym::FLOAT;
    }
    if (name == "float64" || name == "double")
    {
        return ns3opengym::DOUBLE;
    }
    NS_ABORT_MSG("OpenGymBoxSpace: dtype '" << name
                                            << "', expected int32, uint32, float32 or float64");
    return ns3opengym::NoDType;
}

std::string
OpenGymBoxSpace::DtypeName(ns3opengym::Dtype dtype)
{
    switch (dtype)
    {
    case ns3opengym::INT:
        return "int32";
    case ns3opengym::UINT:
        return "uint32";
    case ns3opengym::FLOAT:
        return "float32";
    case ns3opengym::DOUBLE:
        return "float64";
    default:
        return "NoDType";
    }
}

float
OpenGymBoxSpace::GetLow() const
{
    return m_low;
}

float
OpenGymBoxSpace::GetHigh() const
{
    return m_high;
}

const std::vector<uint32_t>&
OpenGymBoxSpace::GetShape() const
{
    return m_shape;
}

ns3opengym::Dtype
OpenGymBoxSpace::GetDtype() const
{
    return m_dtype;
}

uint64_t
OpenGymBoxSpace::GetSize() const
{
    return std::accumulate(m_shape.begin(), m_shape.end(), uint64_t{1}, std::multiplies<>());
}

void
OpenGymBoxSpace::FillSpaceDescription(ns3opengym::SpaceDescription* out) const
{
    ns3opengym::BoxSpace space;
    space.set_low(m_low);
    space.set_high(m_high);
    space.set_dtype(m_dtype);
    for (auto dim : m_shape)
    {
        space.add_shape(dim);
    }
    out->set_type(ns3opengym::Box);
    out->mutable_space()->PackFrom(space);
}

void
OpenGymBoxSpace::Print(std::ostream& os) const
{
    os << "Box(" << m_low << ", " << m_high << ", (";
    for (auto dim : m_shape)
    {
        os << dim << ",";
    }
    os << "), " << DtypeName(m_dtype) << ")";
}

// ---- Tuple --------------------------------------------------------------------------------

TypeId
OpenGymTupleSpace::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymTupleSpace")
                            .SetParent<OpenGymSpace>()
                            .SetGroupName("OpenGym")
                            .AddConstructor<OpenGymTupleSpace>();
    return tid;
}

OpenGymTupleSpace::OpenGymTupleSpace() = default;

void
OpenGymTupleSpace::Add(Ptr<OpenGymSpace> space)
{
    NS_ABORT_MSG_IF(!space, "OpenGymTupleSpace::Add: null space");
    m_elements.push_back(space);
}

Ptr<OpenGymSpace>
OpenGymTupleSpace::Get(uint32_t index) const
{
    return index < m_elements.size() ? m_elements[index] : nullptr;
}

uint32_t
OpenGymTupleSpace::GetN() const
{
    return m_elements.size();
}

void
OpenGymTupleSpace::FillSpaceDescription(ns3opengym::SpaceDescription* out) const
{
    ns3opengym::TupleSpace space;
    for (const auto& element : m_elements)
    {
        element->FillSpaceDescription(space.add_element());
    }
    out->set_type(ns3opengym::Tuple);
    out->mutable_space()->PackFrom(space);
}

void
OpenGymTupleSpace::Print(std::ostream& os) const
{
    os << "Tuple(";
    for (size_t i = 0; i < m_elements.size(); ++i)
    {
        os << (i ? ", " : "");
        m_elements[i]->Print(os);
    }
    os << ")";
}

void
OpenGymTupleSpace::DoDispose()
{
    m_elements.clear();
    OpenGymSpace::DoDispose();
}

// ---- Dict ---------------------------------------------------------------------------------

TypeId
OpenGymDictSpace::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymDictSpace")
                            .SetParent<OpenGymSpace>()
                            .SetGroupName("OpenGym")
                            .AddConstructor<OpenGymDictSpace>();
    return tid;
}

OpenGymDictSpace::OpenGymDictSpace() = default;

void
OpenGymDictSpace::Add(const std::string& key, Ptr<OpenGymSpace> space)
{
    NS_ABORT_MSG_IF(!space, "OpenGymDictSpace::Add: null space for key '" << key << "'");
    for (auto& [name, element] : m_elements)
    {
        if (name == key)
        {
            element = space;
            return;
        }
    }
    m_elements.emplace_back(key, space);
}

Ptr<OpenGymSpace>
OpenGymDictSpace::Get(const std::string& key) const
{
    for (const auto& [name, element] : m_elements)
    {
        if (name == key)
        {
            return element;
        }
    }
    return nullptr;
}

std::vector<std::string>
OpenGymDictSpace::GetKeys() const
{
    std::vector<std::string> keys;
    for (const auto& element : m_elements)
    {
        keys.push_back(element.first);
    }
    return keys;
}

void
OpenGymDictSpace::FillSpaceDescription(ns3opengym::SpaceDescription* out) const
{
    ns3opengym::DictSpace space;
    for (const auto& [name, element] : m_elements)
    {
        auto* desc = space.add_element();
        element->FillSpaceDescription(desc);
        desc->set_name(name);
    }
    out->set_type(ns3opengym::Dict);
    out->mutable_space()->PackFrom(space);
}

void
OpenGymDictSpace::Print(std::ostream& os) const
{
    os << "Dict(";
    for (size_t i = 0; i < m_elements.size(); ++i)
    {
        os << (i ? ", " : "") << "'" << m_elements[i].first << "': ";
        m_elements[i].second->Print(os);
    }
    os << ")";
}

void
OpenGymDictSpace::DoDispose()
{
    m_elements.clear();
    OpenGymSpace::DoDispose();
}

} // namespace ns3
