// OpenGym data containers (Discrete, Box<T>, Tuple, Dict) and their ns3opengym wire form.
#include "opengym-container.h"

#include "ns3/log.h"

#include <algorithm>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("OpenGymDataContainer");

NS_OBJECT_ENSURE_REGISTERED(OpenGymDataContainer);
NS_OBJECT_ENSURE_REGISTERED(OpenGymDiscreteContainer);
NS_OBJECT_ENSURE_REGISTERED(OpenGymTupleContainer);
NS_OBJECT_ENSURE_REGISTERED(OpenGymDictContainer);

TypeId
OpenGymDataContainer::GetTypeId()
{
    static TypeId tid =
        TypeId("ns3::OpenGymDataContainer").SetParent<Object>().SetGroupName("OpenGym");
    return tid;
}

ns3opengym::DataContainer
OpenGymDataContainer::GetDataContainerPbMsg() const
{
    ns3opengym::DataContainer msg;
    FillDataContainer(&msg);
    return msg;
}

std::ostream&
operator<<(std::ostream& os, const Ptr<OpenGymDataContainer>& container)
{
    if (container)
    {
        container->Print(os);
    }
    else
    {
        os << "(null container)";
    }
    return os;
}

namespace
{

template <typename Msg>
bool
UnpackChecked(const google::protobuf::Any& any,
              Msg* msg,
              const std::string& where,
              std::string* error)
{
    if (!any.Is<Msg>())
    {
        *error = where + ": expected Any of type " + Msg::descriptor()->full_name() + ", got " +
                 (any.type_url().empty() ? std::string("an empty type URL") : any.type_url());
        return false;
    }
    if (!any.UnpackTo(msg))
    {
        *error = where + ": payload of " + std::to_string(any.value().size()) +
                 " bytes is not a valid " + Msg::descriptor()->full_name();
        return false;
    }
    return true;
}

template <typename T, typename Field>
Ptr<OpenGymDataContainer>
MakeBox(const ns3opengym::BoxDataContainer& box,
        const Field& values,
        const char* fieldName,
        const std::string& where,
        std::string* error)
{
    std::vector<uint32_t> shape(box.shape().begin(), box.shape().end());
    auto container = CreateObject<OpenGymBoxContainer<T>>(shape);
    if (static_cast<uint64_t>(values.size()) != container->GetShapeSize())
    {
        *error = where + ": BoxDataContainer." + fieldName + " has " +
                 std::to_string(values.size()) + " values, expected " +
                 std::to_string(container->GetShapeSize()) + " for its shape";
        return nullptr;
    }
    container->SetData(std::vector<T>(values.begin(), values.end()));
    return container;
}

Ptr<OpenGymDataContainer>
FromMessage(const ns3opengym::DataContainer& msg, const std::string& where, std::string* error)
{
    switch (msg.type())
    {
    case ns3opengym::Discrete: {
        ns3opengym::DiscreteDataContainer discrete;
        if (!UnpackChecked(msg.data(), &discrete, where, error))
        {
            return nullptr;
        }
        auto container = CreateObject<OpenGymDiscreteContainer>();
        container->SetValue(discrete.data());
        return container;
    }
    case ns3opengym::Box: {
        ns3opengym::BoxDataContainer box;
        if (!UnpackChecked(msg.data(), &box, where, error))
        {
            return nullptr;
        }
        switch (box.dtype())
        {
        case ns3opengym::INT:
            return MakeBox<int32_t>(box, box.intdata(), "intData", where, error);
        case ns3opengym::UINT:
            return MakeBox<uint32_t>(box, box.uintdata(), "uintData", where, error);
        case ns3opengym::FLOAT:
            return MakeBox<float>(box, box.floatdata(), "floatData", where, error);
        case ns3opengym::DOUBLE:
            return MakeBox<double>(box, box.doubledata(), "doubleData", where, error);
        default:
            *error = where + ": BoxDataContainer.dtype=" + std::to_string(box.dtype()) +
                     ", expected INT, UINT, FLOAT or DOUBLE";
            return nullptr;
        }
    }
    case ns3opengym::Tuple: {
        ns3opengym::TupleDataContainer tuple;
        if (!UnpackChecked(msg.data(), &tuple, where, error))
        {
            return nullptr;
        }
        auto container = CreateObject<OpenGymTupleContainer>();
        for (int i = 0; i < tuple.element_size(); ++i)
        {
            auto element =
                FromMessage(tuple.element(i), where + "[" + std::to_string(i) + "]", error);
            if (!element)
            {
                return nullptr;
            }
            container->Add(element);
        }
        return container;
    }
    case ns3opengym::Dict: {
        ns3opengym::DictDataContainer dict;
        if (!UnpackChecked(msg.data(), &dict, where, error))
        {
            return nullptr;
        }
        auto container = CreateObject<OpenGymDictContainer>();
        for (const auto& element : dict.element())
        {
            auto value = FromMessage(element, where + "['" + element.name() + "']", error);
            if (!value)
            {
                return nullptr;
            }
            container->Add(element.name(), value);
        }
        return container;
    }
    default:
        *error = where + ": DataContainer.type=" + std::to_string(msg.type()) +
                 ", expected Discrete(1), Box(2), Tuple(3) or Dict(4)";
        return nullptr;
    }
}

} // namespace

Ptr<OpenGymDataContainer>
OpenGymDataContainer::CreateFromDataContainer(const ns3opengym::DataContainer& msg,
                                              std::string* error)
{
    std::string ignored;
    return FromMessage(msg, "actData", error ? error : &ignored);
}

namespace
{

const char*
SpaceTypeName(int type)
{
    switch (type)
    {
    case ns3opengym::Discrete:
        return "Discrete";
    case ns3opengym::Box:
        return "Box";
    case ns3opengym::Tuple:
        return "Tuple";
    case ns3opengym::Dict:
        return "Dict";
    default:
        return "an unknown type";
    }
}

std::string
DtypeName(int dtype)
{
    return ns3opengym::Dtype_IsValid(dtype) ? ns3opengym::Dtype_Name(dtype)
                                            : std::to_string(dtype);
}

std::string
ShapeText(const google::protobuf::RepeatedField<uint32_t>& shape)
{
    std::string text = "[";
    for (int i = 0; i < shape.size(); ++i)
    {
        text += (i ? ", " : "") + std::to_string(shape.Get(i));
    }
    return text + "]";
}

int
BoxValueCount(const ns3opengym::BoxDataContainer& box)
{
    switch (box.dtype())
    {
    case ns3opengym::INT:
        return box.intdata_size();
    case ns3opengym::UINT:
        return box.uintdata_size();
    case ns3opengym::FLOAT:
        return box.floatdata_size();
    case ns3opengym::DOUBLE:
        return box.doubledata_size();
    default:
        return -1;
    }
}

} // namespace

bool
OpenGymDataContainer::CheckAgainstSpace(const ns3opengym::DataContainer& msg,
                                        const ns3opengym::SpaceDescription& space,
                                        const std::string& where,
                                        std::string* error)
{
    if (msg.type() != space.type())
    {
        *error = where + ": a " + SpaceTypeName(msg.type()) + " container (type " +
                 std::to_string(msg.type()) + "), expected " + SpaceTypeName(space.type()) +
                 " for the declared space";
        return false;
    }
    switch (space.type())
    {
    case ns3opengym::Discrete: {
        ns3opengym::DiscreteDataContainer discrete;
        return UnpackChecked(msg.data(), &discrete, where, error);
    }
    case ns3opengym::Box: {
        ns3opengym::BoxSpace boxSpace;
        ns3opengym::BoxDataContainer box;
        if (!UnpackChecked(space.space(), &boxSpace, where + " (space)", error) ||
            !UnpackChecked(msg.data(), &box, where, error))
        {
            return false;
        }
        if (box.dtype() != boxSpace.dtype())
        {
            *error = where + ": Box of dtype " + DtypeName(box.dtype()) + ", expected " +
                     DtypeName(boxSpace.dtype()) + " as declared";
            return false;
        }
        uint64_t expected = 1;
        for (uint32_t d : boxSpace.shape())
        {
            expected *= d;
        }
        const int count = BoxValueCount(box);
        if (box.shape().size() != boxSpace.shape().size() ||
            !std::equal(box.shape().begin(), box.shape().end(), boxSpace.shape().begin()) ||
            count < 0 || static_cast<uint64_t>(count) != expected)
        {
            *error = where + ": Box of shape " + ShapeText(box.shape()) + " with " +
                     std::to_string(count) + " entries, expected shape " +
                     ShapeText(boxSpace.shape()) + " (" + std::to_string(expected) +
                     " entries) as declared";
            return false;
        }
        return true;
    }
    case ns3opengym::Tuple: {
        ns3opengym::TupleSpace tupleSpace;
        ns3opengym::TupleDataContainer tuple;
        if (!UnpackChecked(space.space(), &tupleSpace, where + " (space)", error) ||
            !UnpackChecked(msg.data(), &tuple, where, error))
        {
            return false;
        }
        if (tuple.element_size() != tupleSpace.element_size())
        {
            *error = where + ": Tuple of " + std::to_string(tuple.element_size()) +
                     " elements, expected " + std::to_string(tupleSpace.element_size());
            return false;
        }
        for (int i = 0; i < tuple.element_size(); ++i)
        {
            if (!CheckAgainstSpace(tuple.element(i),
                                   tupleSpace.element(i),
                                   where + "[" + std::to_string(i) + "]",
                                   error))
            {
                return false;
            }
        }
        return true;
    }
    case ns3opengym::Dict: {
        ns3opengym::DictSpace dictSpace;
        ns3opengym::DictDataContainer dict;
        if (!UnpackChecked(space.space(), &dictSpace, where + " (space)", error) ||
            !UnpackChecked(msg.data(), &dict, where, error))
        {
            return false;
        }
        std::string keys;
        for (const auto& element : dict.element())
        {
            keys += (keys.empty() ? "'" : ", '") + element.name() + "'";
        }
        if (dict.element_size() != dictSpace.element_size())
        {
            *error = where + ": Dict with keys [" + keys + "], expected " +
                     std::to_string(dictSpace.element_size()) + " keys";
            return false;
        }
        for (const auto& sub : dictSpace.element())
        {
            const auto found =
                std::find_if(dict.element().begin(), dict.element().end(), [&](const auto& e) {
                    return e.name() == sub.name();
                });
            if (found == dict.element().end())
            {
                *error = where + ": Dict with keys [" + keys + "] has no key '" + sub.name() +
                         "'";
                return false;
            }
            if (!CheckAgainstSpace(*found, sub, where + "['" + sub.name() + "']", error))
            {
                return false;
            }
        }
        return true;
    }
    default:
        *error = where + ": the declared space has type " + std::to_string(space.type());
        return false;
    }
}

// ---- Discrete -----------------------------------------------------------------------------

TypeId
OpenGymDiscreteContainer::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymDiscreteContainer")
                            .SetParent<OpenGymDataContainer>()
                            .SetGroupName("OpenGym")
                            .AddConstructor<OpenGymDiscreteContainer>();
    return tid;
}

OpenGymDiscreteContainer::OpenGymDiscreteContainer() = default;

OpenGymDiscreteContainer::OpenGymDiscreteContainer(uint32_t n)
    : m_n(n)
{
}

void
OpenGymDiscreteContainer::SetValue(int32_t value)
{
    m_value = value;
}

int32_t
OpenGymDiscreteContainer::GetValue() const
{
    return m_value;
}

void
OpenGymDiscreteContainer::FillDataContainer(ns3opengym::DataContainer* out) const
{
    ns3opengym::DiscreteDataContainer discrete;
    discrete.set_data(m_value);
    out->set_type(ns3opengym::Discrete);
    out->mutable_data()->PackFrom(discrete);
}

void
OpenGymDiscreteContainer::Print(std::ostream& os) const
{
    os << m_value;
}

// ---- Tuple --------------------------------------------------------------------------------

TypeId
OpenGymTupleContainer::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymTupleContainer")
                            .SetParent<OpenGymDataContainer>()
                            .SetGroupName("OpenGym")
                            .AddConstructor<OpenGymTupleContainer>();
    return tid;
}

OpenGymTupleContainer::OpenGymTupleContainer() = default;

void
OpenGymTupleContainer::Add(Ptr<OpenGymDataContainer> container)
{
    NS_ABORT_MSG_IF(!container, "OpenGymTupleContainer::Add: null container");
    m_elements.push_back(container);
}

Ptr<OpenGymDataContainer>
OpenGymTupleContainer::Get(uint32_t index) const
{
    return index < m_elements.size() ? m_elements[index] : nullptr;
}

uint32_t
OpenGymTupleContainer::GetN() const
{
    return m_elements.size();
}

void
OpenGymTupleContainer::FillDataContainer(ns3opengym::DataContainer* out) const
{
    ns3opengym::TupleDataContainer tuple;
    for (const auto& element : m_elements)
    {
        element->FillDataContainer(tuple.add_element());
    }
    out->set_type(ns3opengym::Tuple);
    out->mutable_data()->PackFrom(tuple);
}

void
OpenGymTupleContainer::Print(std::ostream& os) const
{
    os << "(";
    for (size_t i = 0; i < m_elements.size(); ++i)
    {
        os << (i ? ", " : "");
        m_elements[i]->Print(os);
    }
    os << ")";
}

void
OpenGymTupleContainer::DoDispose()
{
    m_elements.clear();
    OpenGymDataContainer::DoDispose();
}

// ---- Dict ---------------------------------------------------------------------------------

TypeId
OpenGymDictContainer::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymDictContainer")
                            .SetParent<OpenGymDataContainer>()
                            .SetGroupName("OpenGym")
                            .AddConstructor<OpenGymDictContainer>();
    return tid;
}

OpenGymDictContainer::OpenGymDictContainer() = default;

void
OpenGymDictContainer::Add(const std::string& key, Ptr<OpenGymDataContainer> container)
{
    NS_ABORT_MSG_IF(!container, "OpenGymDictContainer::Add: null container for '" << key << "'");
    for (auto& [name, element] : m_elements)
    {
        if (name == key)
        {
            element = container;
            return;
        }
    }
    m_elements.emplace_back(key, container);
}

Ptr<OpenGymDataContainer>
OpenGymDictContainer::Get(const std::string& key) const
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
OpenGymDictContainer::GetKeys() const
{
    std::vector<std::string> keys;
    for (const auto& element : m_elements)
    {
        keys.push_back(element.first);
    }
    return keys;
}

void
OpenGymDictContainer::FillDataContainer(ns3opengym::DataContainer* out) const
{
    ns3opengym::DictDataContainer dict;
    for (const auto& [name, element] : m_elements)
    {
        auto* msg = dict.add_element();
        element->FillDataContainer(msg);
        msg->set_name(name);
    }
    out->set_type(ns3opengym::Dict);
    out->mutable_data()->PackFrom(dict);
}

void
OpenGymDictContainer::Print(std::ostream& os) const
{
    os << "{";
    for (size_t i = 0; i < m_elements.size(); ++i)
    {
        os << (i ? ", " : "") << "'" << m_elements[i].first << "': ";
        m_elements[i].second->Print(os);
    }
    os << "}";
}

void
OpenGymDictContainer::DoDispose()
{
    m_elements.clear();
    OpenGymDataContainer::DoDispose();
}

} // namespace ns3
