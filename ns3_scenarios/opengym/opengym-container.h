// OpenGym data containers (Discrete, Box<T>, Tuple, Dict) and their ns3opengym wire form.
#ifndef IABMETA_OPENGYM_CONTAINER_H
#define IABMETA_OPENGYM_CONTAINER_H

#include "ns3opengym.pb.h"

#include "ns3/abort.h"
#include "ns3/object.h"
#include "ns3/ptr.h"
#include "ns3/type-name.h"

#include <cstdint>
#include <numeric>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ns3
{

/**
 * Base class of observation and action values.
 */
class OpenGymDataContainer : public Object
{
  public:
    static TypeId GetTypeId();

    /// Write this value (Any-packed) into @p out.
    virtual void FillDataContainer(ns3opengym::DataContainer* out) const = 0;
    virtual void Print(std::ostream& os) const = 0;

    ns3opengym::DataContainer GetDataContainerPbMsg() const;

    /**
     * Build a container from its wire form, checking every Any type URL and element count.
     * @return nullptr on malformed input, with the reason in @p error.
     */
    static Ptr<OpenGymDataContainer> CreateFromDataContainer(const ns3opengym::DataContainer& msg,
                                                             std::string* error);

    /**
     * Check that a value's wire form has the structure of @p space: the container type, the
     * Any type URLs, the Box dtype and shape (so the number of entries), the Tuple length and
     * the Dict keys, recursively. Values are not range-checked (a scenario decides what an
     * out-of-range entry means). A well-formed message of the wrong structure is a protocol
     * error, not something to idle through.
     * @return false with the first difference (named by its path from @p where) in @p error.
     */
    static bool CheckAgainstSpace(const ns3opengym::DataContainer& msg,
                                  const ns3opengym::SpaceDescription& space,
                                  const std::string& where,
                                  std::string* error);
};

std::ostream& operator<<(std::ostream& os, const Ptr<OpenGymDataContainer>& container);

/// One integer of a Discrete space.
class OpenGymDiscreteContainer : public OpenGymDataContainer
{
  public:
    static TypeId GetTypeId();
    OpenGymDiscreteContainer();
    /// @param n size of the space (informative; values are not range-checked on the wire)
    explicit OpenGymDiscreteContainer(uint32_t n);

    void SetValue(int32_t value);
    int32_t GetValue() const;
    void FillDataContainer(ns3opengym::DataContainer* out) const override;
    void Print(std::ostream& os) const override;

  private:
    uint32_t m_n{0};
    int32_t m_value{0};
};

/// Wire dtype of a C++ element type (int32_t, uint32_t, float, double).
template <typename T>
constexpr ns3opengym::Dtype
OpenGymDtypeOf()
{
    static_assert(std::is_same_v<T, int32_t> || std::is_same_v<T, uint32_t> ||
                      std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "OpenGymBoxContainer<T>: T must be int32_t, uint32_t, float or double");
    if constexpr (std::is_same_v<T, int32_t>)
    {
        return ns3opengym::INT;
    }
    else if constexpr (std::is_same_v<T, uint32_t>)
    {
        return ns3opengym::UINT;
    }
    else if constexpr (std::is_same_v<T, float>)
    {
        return ns3opengym::FLOAT;
    }
    else
    {
        return ns3opengym::DOUBLE;
    }
}

/// Array of T in row-major order with a shape.
template <typename T>
class OpenGymBoxContainer : public OpenGymDataContainer
{
  public:
    static TypeId GetTypeId();
    OpenGymBoxContainer() = default;
    explicit OpenGymBoxContainer(std::vector<uint32_t> shape);

    /// Append one element (row-major order).
    void AddValue(T value);
    /// Replace all elements; their number must match the shape (checked when sent).
    void SetData(std::vector<T> data);
    T GetValue(uint32_t index) const;
    const std::vector<T>& GetData() const;
    std::vector<T>& GetMutableData();
    const std::vector<uint32_t>& GetShape() const;
    void SetShape(std::vector<uint32_t> shape);
    uint64_t GetShapeSize() const;

    void FillDataContainer(ns3opengym::DataContainer* out) const override;
    void Print(std::ostream& os) const override;

  private:
    std::vector<uint32_t> m_shape;
    std::vector<T> m_data;
};

/// Ordered sequence of containers.
class OpenGymTupleContainer : public OpenGymDataContainer
{
  public:
    static TypeId GetTypeId();
    OpenGymTupleContainer();

    void Add(Ptr<OpenGymDataContainer> container);
    Ptr<OpenGymDataContainer> Get(uint32_t index) const;
    uint32_t GetN() const;
    void FillDataContainer(ns3opengym::DataContainer* out) const override;
    void Print(std::ostream& os) const override;

  protected:
    void DoDispose() override;

  private:
    std::vector<Ptr<OpenGymDataContainer>> m_elements;
};

/// Named containers, in insertion order.
class OpenGymDictContainer : public OpenGymDataContainer
{
  public:
    static TypeId GetTypeId();
    OpenGymDictContainer();

    void Add(const std::string& key, Ptr<OpenGymDataContainer> container);
    /// The element @p key, or nullptr.
    Ptr<OpenGymDataContainer> Get(const std::string& key) const;
    std::vector<std::string> GetKeys() const;
    void FillDataContainer(ns3opengym::DataContainer* out) const override;
    void Print(std::ostream& os) const override;

  protected:
    void DoDispose() override;

  private:
    std::vector<std::pair<std::string, Ptr<OpenGymDataContainer>>> m_elements;
};

// ---- OpenGymBoxContainer<T> implementation ---------------------------------------------------

template <typename T>
TypeId
OpenGymBoxContainer<T>::GetTypeId()
{
    static TypeId tid = TypeId("ns3::OpenGymBoxContainer<" + TypeNameGet<T>() + ">")
                            .SetParent<OpenGymDataContainer>()
                            .SetGroupName("OpenGym")
                            .template AddConstructor<OpenGymBoxContainer<T>>();
    return tid;
}

template <typename T>
OpenGymBoxContainer<T>::OpenGymBoxContainer(std::vector<uint32_t> shape)
    : m_shape(std::move(shape))
{
    m_data.reserve(GetShapeSize());
}

template <typename T>
void
OpenGymBoxContainer<T>::AddValue(T value)
{
    m_data.push_back(value);
}

template <typename T>
void
OpenGymBoxContainer<T>::SetData(std::vector<T> data)
{
    m_data = std::move(data);
}

template <typename T>
T
OpenGymBoxContainer<T>::GetValue(uint32_t index) const
{
    NS_ABORT_MSG_IF(index >= m_data.size(),
                    "OpenGymBoxContainer::GetValue: index " << index << " >= size "
                                                            << m_data.size());
    return m_data[index];
}

template <typename T>
const std::vector<T>&
OpenGymBoxContainer<T>::GetData() const
{
    return m_data;
}

template <typename T>
std::vector<T>&
OpenGymBoxContainer<T>::GetMutableData()
{
    return m_data;
}

template <typename T>
const std::vector<uint32_t>&
OpenGymBoxContainer<T>::GetShape() const
{
    return m_shape;
}

template <typename T>
void
OpenGymBoxContainer<T>::SetShape(std::vector<uint32_t> shape)
{
    m_shape = std::move(shape);
}

template <typename T>
uint64_t
OpenGymBoxContainer<T>::GetShapeSize() const
{
    return std::accumulate(m_shape.begin(), m_shape.end(), uint64_t{1}, std::multiplies<>());
}

template <typename T>
void
OpenGymBoxContainer<T>::FillDataContainer(ns3opengym::DataContainer* out) const
{
    NS_ABORT_MSG_IF(m_data.size() != GetShapeSize(),
                    "OpenGymBoxContainer: " << m_data.size() << " values, expected "
                                            << GetShapeSize() << " for its shape");
    ns3opengym::BoxDataContainer box;
    box.set_dtype(OpenGymDtypeOf<T>());
    box.mutable_shape()->Add(m_shape.begin(), m_shape.end());
    if constexpr (std::is_same_v<T, int32_t>)
    {
        box.mutable_intdata()->Add(m_data.begin(), m_data.end());
    }
    else if constexpr (std::is_same_v<T, uint32_t>)
    {
        box.mutable_uintdata()->Add(m_data.begin(), m_data.end());
    }
    else if constexpr (std::is_same_v<T, float>)
    {
        box.mutable_floatdata()->Add(m_data.begin(), m_data.end());
    }
    else
    {
        box.mutable_doubledata()->Add(m_data.begin(), m_data.end());
    }
    out->set_type(ns3opengym::Box);
    out->mutable_data()->PackFrom(box);
}

template <typename T>
void
OpenGymBoxContainer<T>::Print(std::ostream& os) const
{
    os << "[";
    for (size_t i = 0; i < m_data.size(); ++i)
    {
        os << (i ? ", " : "") << m_data[i];
    }
    os << "]";
}

} // namespace ns3

#endif
