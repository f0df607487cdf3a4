// A restricted pickle (protocols 0-5 read, protocol 2 written) over a small value model.
// Nothing in a pickle is ever executed: globals are names, matched against an allow-list
// modelled on torch.load(weights_only=True); REDUCE of an allowed global is interpreted
// (OrderedDict, tensor rebuilds, set, bytes), anything else becomes an opaque object.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/status.h"

namespace ckpt::torch {

enum class Kind {
  kNone,
  kBool,
  kInt,
  kFloat,
  kStr,
  kBytes,
  kTuple,
  kList,
  kDict,
  kSet,
  kStorage,  // a persistent-id storage reference (only seen inside tensors normally)
  kTensor,
  kGlobal,  // a bare global name (e.g. a dtype)
  kObject,  // the result of calling a global we do not interpret: kept as data
};

// What a tensor points at. Tensors sharing a storage key (in one file) share bytes.
struct TensorRef {
  std::string dtype;          // "float32", "bfloat16", ... from the storage class
  std::string storage_class;  // "FloatStorage"
  std::string storage_key;    // record data/<key>
  std::string device;         // "cpu", "cuda:0"
  uint64_t storage_numel = 0;
  int64_t offset = 0;
  std::vector<int64_t> shape, stride;
  bool requires_grad = false;
  bool parameter = false;       // nn.Parameter
  const void* owner = nullptr;  // which file the storage key belongs to (set by TorchFile)

  uint64_t numel() const;
  bool contiguous() const;
};

struct Value {
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  // kInt outside int64: little-endian two's complement bytes (LONG1's payload); empty otherwise.
  std::string big;
  double f = 0;
  std::string s;                      // kStr (UTF-8), kBytes, kGlobal module
  std::string name;                   // kGlobal name
  std::vector<Value*> items;          // tuple, list, set; dict: key, value, key, value...
  bool ordered = false;               // dict: collections.OrderedDict
  bool frozen = false;                // set: frozenset
  Value* state = nullptr;             // dict/object: BUILD state (an OrderedDict's _metadata)
  Value* callee = nullptr;            // object: the global called; its args are in items
  std::shared_ptr<TensorRef> tensor;  // kStorage, kTensor

  std::string global_name() const { return s + "." + name; }
};

// Owns every value of one pickle; values point at each other and may be shared.
class Document {
 public:
  Value* make(Kind kind);
  Value* make_str(std::string s);
  Value* make_int(int64_t v);
  Value* root = nullptr;
  // Non-allow-listed globals seen, in order of first appearance ("os.system").
  std::vector<std::string> unsafe_globals;
  size_t size() const { return values_.size(); }

 private:
  std::deque<Value> values_;
};

struct UnpickleOptions {
  // Refuse (error naming the global) instead of recording non-allow-listed globals.
  bool strict = true;
  // Bounds on what a small input may make us allocate.
  size_t max_values = 50'000'000;
};

// True when `module.name` is on the allow-list (weights_only's, plus builtins.set,
// _codecs.encode and the like that torch.save emits for plain Python data).
bool is_allowed_global(std::string_view module, std::string_view name);

Result<std::unique_ptr<Document>> unpickle(std::string_view data, const UnpickleOptions& opts);

// Writes v as protocol 2, the way torch.save does, using only opcodes and globals that
// torch.load(weights_only=True) accepts (plus BINFLOAT, set and bytes, which torch >= 2
// accepts). storage_key maps a tensor to the key it gets in the written file.
struct PickleWriteOptions {
  std::function<std::string(const TensorRef&)> storage_key;
};
Result<std::string> pickle(const Value& v, const PickleWriteOptions& opts);

// Dtype of a storage class name ("FloatStorage" -> "float32"); empty if unknown.
std::string_view dtype_of_storage_class(std::string_view cls);
std::string_view storage_class_of_dtype(std::string_view dtype);
size_t dtype_size(std::string_view dtype);  // 0 if unknown

// Repr of a value for messages and dotted names (keys).
std::string key_repr(const Value& v);
// Decimal text of an int value (big ints included).
std::string int_to_string(const Value& v);
// Parses decimal text (optional sign) into an int value of any size; false if not a number.
bool int_from_decimal(std::string_view text, Value* v);

}  // namespace ckpt::torch
