// safetensors read and write. Layout: u64 little-endian header length N, N bytes of JSON
// {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...},
// then the data section that the offsets index. Every rule the reference implementation
// (huggingface/safetensors) enforces is checked here before a byte of data is touched.
#include "moxing/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <set>

#include "io/file_util.h"
#include "moxing/core/error.h"

namespace moxing {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

using json = nlohmann::json;

// Like the reference implementation: a header over 100 MB is corrupt, not a big model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// One header entry, validated.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

std::string offsets_str(const Entry& e) { return fmt::format("[{}, {}]", e.begin, e.end); }

// Appends v as JSON, nested values past depth 2 elided: json::dump recurses without a limit,
// and a hostile header can nest arrays a million deep.
void dump_bounded(const json& v, int depth, std::string& out) {
  if (!v.is_structured()) {
    out += v.dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  bool array = v.is_array();
  if (depth >= 2) {
    out += array ? "[...]" : "{...}";
    return;
  }
  out += array ? '[' : '{';
  bool first = true;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!first) out += ',';
    first = false;
    if (out.size() > 80) {
      out += "...";
      break;
    }
    if (!array) out += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ':';
    dump_bounded(*it, depth + 1, out);
  }
  out += array ? ']' : '}';
}

// A JSON value as it appeared, shortened for a message.
std::string short_dump(const json& v) {
  std::string s;
  dump_bounded(v, 0, s);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

void check_length(size_t size, const std::string& file) {
  if (size == 0)
    fail("{}: file is empty (a safetensors file starts with an 8-byte header length)", file);
  if (size < 8) fail("{}: file is {} bytes, shorter than the 8-byte header length", file, size);
}

// Parses the header JSON, rejecting duplicate keys at any depth (nlohmann would keep the last).
json parse_header(const char* begin, const char* end, const std::string& file) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool duplicate_is_tensor = false;
  auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && duplicate.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) {
        duplicate = key;
        duplicate_is_tensor = open_objects.size() == 1;
      }
    }
    return true;
  };
  json header;
  try {
    header = json::parse(begin, end, on_event);
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", file, e.what());
  }
  if (!duplicate.empty()) {
    if (duplicate_is_tensor) fail("{}: duplicate tensor name '{}' in the header", file, duplicate);
    fail("{}: duplicate key '{}' in the header", file, duplicate);
  }
  if (!header.is_object()) {
    fail("{}: header is not a JSON object (it is {})", file, header.type_name());
  }
  return header;
}

// A JSON number that is a non-negative integer, or nullopt.
std::optional<uint64_t> as_index(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

Entry parse_entry(const std::string& name, const json& v, const std::string& file) {
  if (!v.is_object())
    fail("{}: tensor '{}': entry is not an object: {}", file, name, short_dump(v));
  Entry e{name, DType::f32, {}, 0, 0};

  auto dtype_it = v.find("dtype");
  if (dtype_it == v.end() || !dtype_it->is_string()) {
    fail("{}: tensor '{}': missing or non-string dtype", file, name);
  }
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  std::optional<DType> dtype = dtype_from_safetensors_name(dtype_name);
  if (!dtype) {
    std::vector<std::string> known;
    for (DType t : kAllDTypes) known.emplace_back(dtype_safetensors_name(t));
    fail("{}: tensor '{}': unknown dtype '{}' (moxing reads {})", file, name, dtype_name,
         fmt::join(known, ", "));
  }
  e.dtype = *dtype;

  auto shape_it = v.find("shape");
  if (shape_it == v.end() || !shape_it->is_array()) {
    fail("{}: tensor '{}': missing shape, or shape is not a list", file, name);
  }
  // The element count, and the product of the dims with 0 taken as 1 (what strides need),
  // must both fit in int64, as must the byte count.
  uint64_t numel = 1, stride_span = 1;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (const json& d : *shape_it) {
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0) {
      fail("{}: tensor '{}': shape {} has a negative dimension", file, name, short_dump(*shape_it));
    }
    std::optional<uint64_t> dim = as_index(d);
    if (!dim)
      fail("{}: tensor '{}': shape {} is not a list of integers", file, name,
           short_dump(*shape_it));
    if (__builtin_mul_overflow(stride_span, std::max<uint64_t>(*dim, 1), &stride_span) ||
        stride_span > kMax) {
      fail("{}: tensor '{}': shape {} has too many elements", file, name, short_dump(*shape_it));
    }
    numel *= *dim;
    e.shape.push_back(static_cast<int64_t>(*dim));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, dtype_size(e.dtype), &nbytes) || nbytes > kMax) {
    fail("{}: tensor '{}': shape {} has too many elements", file, name, short_dump(*shape_it));
  }

  auto off_it = v.find("data_offsets");
  std::optional<uint64_t> begin, end;
  if (off_it != v.end() && off_it->is_array() && off_it->size() == 2) {
    begin = as_index((*off_it)[0]);
    end = as_index((*off_it)[1]);
  }
  if (!begin || !end) {
    fail(
        "{}: tensor '{}': data_offsets must be [begin, end] with two non-negative integers, got {}",
        file, name, off_it == v.end() ? std::string("nothing") : short_dump(*off_it));
  }
  e.begin = *begin;
  e.end = *end;
  if (e.begin > e.end) {
    fail("{}: tensor '{}': data_offsets {} begin after they end", file, name, offsets_str(e));
  }
  if (e.end - e.begin != nbytes) {
    fail("{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets {} hold {}", file, name,
         shape_str(e.shape), dtype_name, nbytes, offsets_str(e), e.end - e.begin);
  }
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& file) {
  std::map<std::string, std::string> metadata;
  if (v.is_null()) return metadata;
  if (!v.is_object()) fail("{}: __metadata__ is not an object (it is {})", file, v.type_name());
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string()) {
      fail("{}: __metadata__ value for '{}' is not a string: {}", file, key, short_dump(value));
    }
    metadata.emplace(key, value.get<std::string>());
  }
  return metadata;
}

// Entries sorted by offset must tile the data section exactly: no overlap, no hole, no tail.
void check_layout(std::vector<Entry>& entries, uint64_t data_size, const std::string& file) {
  for (const Entry& e : entries) {
    if (e.end > data_size) {
      fail(
          "{}: tensor '{}': data_offsets {} run past the end of the data section ({} bytes; "
          "is the file truncated?)",
          file, e.name, offsets_str(e), data_size);
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < pos) {
      fail("{}: tensors '{}' {} and '{}' {} overlap", file, prev->name, offsets_str(*prev), e.name,
           offsets_str(e));
    }
    if (e.begin > pos) {
      fail("{}: bytes [{}, {}) of the data section belong to no tensor (a hole before '{}')", file,
           pos, e.begin, e.name);
    }
    pos = e.end;
    prev = &e;
  }
  if (pos != data_size) {
    fail("{}: bytes [{}, {}) at the end of the data section belong to no tensor", file, pos,
         data_size);
  }
}

// bytes: the whole file, writable (a private mapping or our own copy), kept alive by owner.
SafetensorsFile parse_bytes(uint8_t* bytes, size_t size, const std::string& file,
                            std::shared_ptr<void> owner) {
  check_length(size, file);
  uint64_t header_len;
  std::memcpy(&header_len, bytes, 8);
  if (header_len > kMaxHeaderBytes) {
    fail("{}: header length {} is over the {} byte limit (not a safetensors file, or corrupt)",
         file, header_len, kMaxHeaderBytes);
  }
  if (header_len > size - 8) {
    fail("{}: header length {} runs past the end of the file ({} bytes)", file, header_len, size);
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  json header = parse_header(header_begin, header_begin + header_len, file);

  SafetensorsFile out;
  out.path = file;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      out.metadata = parse_metadata(value, file);
    } else {
      entries.push_back(parse_entry(key, value, file));
    }
  }
  uint8_t* data = bytes + 8 + header_len;
  uint64_t data_size = size - 8 - header_len;
  check_layout(entries, data_size, file);

  for (const Entry& e : entries) {
    uint8_t* p = data + e.begin;
    size_t n = e.end - e.begin;
    if (e.dtype == DType::boolean) {
      // a byte other than 0 or 1 read as a C++ bool is undefined behavior
      for (size_t k = 0; k < n; ++k) {
        if (p[k] > 1) {
          fail("{}: tensor '{}': BOOL element {} is {}, not 0 or 1", file, e.name, k, p[k]);
        }
      }
    }
    Tensor t;
    if (n == 0) {
      t = empty(e.shape, TensorOptions(e.dtype).device(kCPU));
    } else if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) == 0) {
      t = from_blob(p, e.shape, e.dtype, owner);
    } else {
      t = from_blob_copy(p, e.shape, e.dtype);
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  out.bytes = bytes;
  out.size = size;
  out.owner = std::move(owner);
  return out;
}

// The header bytes (length prefix included) for tensors already made contiguous.
std::string make_header(const NamedTensors& tensors,
                        const std::map<std::string, std::string>& metadata,
                        const std::string& where) {
  std::set<std::string> seen;
  std::string h = "{";
  try {
    if (!metadata.empty()) h += "\"__metadata__\":" + json(metadata).dump();
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
      if (name == "__metadata__") fail("{}: '__metadata__' cannot be a tensor name", where);
      if (!seen.insert(name).second) fail("{}: duplicate tensor name '{}'", where, name);
      if (!t.defined()) fail("{}: tensor '{}' is undefined", where, name);
      if (t.device() != kCPU) {
        fail("{}: tensor '{}' is on {}; move it to the cpu first", where, name,
             device_name(t.device()));
      }
      uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
      if (h.size() > 1) h += ',';
      h += json(name).dump();
      h += fmt::format(R"(:{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})",
                       safetensors_dtype_name(t.dtype()), fmt::join(t.shape(), ","), offset,
                       offset + nbytes);
      offset += nbytes;
    }
  } catch (const json::exception& e) {
    fail("{}: a tensor name or metadata string is not valid UTF-8 ({})", where, e.what());
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  uint64_t n = h.size();
  std::string prefix(8, '\0');
  std::memcpy(prefix.data(), &n, 8);
  return prefix + h;
}

NamedTensors contiguous_tensors(const NamedTensors& tensors) {
  NamedTensors out;
  out.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    out.emplace_back(name, t.defined() && !t.is_contiguous() ? t.detach().contiguous() : t);
  }
  return out;
}

size_t nbytes_of(const Tensor& t) { return static_cast<size_t>(t.numel()) * dtype_size(t.dtype()); }

}  // namespace

const char* safetensors_dtype_name(DType dtype) { return dtype_safetensors_name(dtype); }

Tensor SafetensorsFile::get(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  std::vector<std::string> names;
  for (size_t k = 0; k < tensors.size() && k < 20; ++k)
    names.push_back("'" + tensors[k].first + "'");
  std::string more = tensors.size() > 20 ? fmt::format(", and {} more", tensors.size() - 20) : "";
  fail("{}: no tensor named '{}'; the file has {}{}", path, name,
       names.empty() ? std::string("no tensors") : fmt::format("{}", fmt::join(names, ", ")), more);
}

bool SafetensorsFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const auto& p) { return p.first == name; });
}

SafetensorsFile load_safetensors(const std::string& path) {
  detail::FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail("{}: cannot open: {}", path, detail::errno_text(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) fail("{}: cannot stat: {}", path, detail::errno_text(errno));
  if (S_ISDIR(st.st_mode)) fail("{}: is a folder, not a safetensors file", path);
  if (!S_ISREG(st.st_mode)) fail("{}: is not a regular file", path);
  size_t size = static_cast<size_t>(st.st_size);
  check_length(size, path);
  // Private and writable: in-place ops on loaded tensors copy the touched pages and never
  // reach the file. Our writers replace files by rename, so a mapped file is never rewritten.
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
  if (addr == MAP_FAILED) fail("{}: cannot map: {}", path, detail::errno_text(errno));
  std::shared_ptr<void> owner(addr, [size](void* p) { ::munmap(p, size); });
  return parse_bytes(static_cast<uint8_t*>(addr), size, path, std::move(owner));
}

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size,
                                  const std::string& name_for_errors) {
  check_length(size, name_for_errors);
  constexpr std::align_val_t kAlign{64};
  std::shared_ptr<void> owner(::operator new(size, kAlign),
                              [kAlign](void* p) { ::operator delete(p, kAlign); });
  std::memcpy(owner.get(), data, size);
  return parse_bytes(static_cast<uint8_t*>(owner.get()), size, name_for_errors, owner);
}

std::string serialize_safetensors(const NamedTensors& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  NamedTensors ready = contiguous_tensors(tensors);
  std::string out = make_header(ready, metadata, "serialize_safetensors");
  for (const auto& [name, t] : ready) {
    if (nbytes_of(t) > 0) out.append(static_cast<const char*>(t.raw_data()), nbytes_of(t));
  }
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  NamedTensors ready = contiguous_tensors(tensors);
  std::string header = make_header(ready, metadata, "save_safetensors: " + path);
  std::string tmp = path + ".tmp";
  detail::write_file_atomic(path, tmp, [&](int fd) {
    detail::write_all(fd, header.data(), header.size(), tmp);
    for (const auto& [name, t] : ready) {
      if (nbytes_of(t) > 0) detail::write_all(fd, t.raw_data(), nbytes_of(t), tmp);
    }
  });
}

}  // namespace moxing
