#include "ckpt/torch/pickle.h"

#include <cmath>
#include <cstring>
#include <unordered_map>

namespace ckpt::torch {
namespace {

constexpr size_t kMaxDepth = 1000;

Status bad(const std::string& msg) { return Status(Errc::kCorrupt, "malformed pickle: " + msg); }

struct DtypeInfo {
  const char* cls;
  const char* dtype;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {"FloatStorage", "float32", 4},
    {"DoubleStorage", "float64", 8},
    {"HalfStorage", "float16", 2},
    {"BFloat16Storage", "bfloat16", 2},
    {"ComplexHalfStorage", "complex32", 4},
    {"ComplexFloatStorage", "complex64", 8},
    {"ComplexDoubleStorage", "complex128", 16},
    {"ByteStorage", "uint8", 1},
    {"CharStorage", "int8", 1},
    {"ShortStorage", "int16", 2},
    {"IntStorage", "int32", 4},
    {"LongStorage", "int64", 8},
    {"BoolStorage", "bool", 1},
    {"QUInt8Storage", "quint8", 1},
    {"QInt8Storage", "qint8", 1},
    {"QInt32Storage", "qint32", 4},
    {"QUInt4x2Storage", "quint4x2", 1},
    {"QUInt2x4Storage", "quint2x4", 1},
    {"Float8_e5m2Storage", "float8_e5m2", 1},
    {"Float8_e4m3fnStorage", "float8_e4m3fn", 1},
    {"UInt16Storage", "uint16", 2},
    {"UInt32Storage", "uint32", 4},
    {"UInt64Storage", "uint64", 8},
};

const char* const kDtypeGlobals[] = {"float16",   "float32",    "float64", "bfloat16", "complex32",
                                     "complex64", "complex128", "int8",    "int16",    "int32",
                                     "int64",     "uint8",      "bool",    "half",     "float",
                                     "double",    "long",       "int",     "short",    "cfloat",
                                     "cdouble",   "chalf",      "qint8",   "quint8",   "qint32"};

bool is_builtins(std::string_view m) { return m == "builtins" || m == "__builtin__"; }

// Arbitrary-size integers as little-endian two's complement bytes (pickle's LONG encoding).
std::string int64_bytes(int64_t v) {
  std::string out;
  for (int k = 0; k < 8; ++k)
    out.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * k)) & 0xff));
  // Trim redundant sign bytes.
  while (out.size() > 1) {
    uint8_t last = static_cast<uint8_t>(out.back()),
            prev = static_cast<uint8_t>(out[out.size() - 2]);
    if ((last == 0x00 && !(prev & 0x80)) || (last == 0xff && (prev & 0x80))) {
      out.pop_back();
    } else {
      break;
    }
  }
  return out;
}

// Fills v from two's complement bytes: as i when it fits, else in big.
void set_int_from_bytes(Value* v, std::string_view b) {
  v->kind = Kind::kInt;
  if (b.empty()) {
    v->i = 0;
    return;
  }
  const bool neg = static_cast<uint8_t>(b.back()) & 0x80;
  size_t n = b.size();
  // Drop sign-extension bytes to see whether it fits 8 bytes.
  while (n > 1 && static_cast<uint8_t>(b[n - 1]) == (neg ? 0xff : 0x00) &&
         ((static_cast<uint8_t>(b[n - 2]) & 0x80) != 0) == neg) {
    --n;
  }
  if (n <= 8) {
    uint64_t u = neg ? ~0ull : 0ull;
    for (size_t k = 0; k < n; ++k) {
      u &= ~(0xffull << (8 * k));
      u |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
    }
    v->i = static_cast<int64_t>(u);
    return;
  }
  v->big.assign(b.substr(0, n));
}

std::string big_to_decimal(const std::string& b) {
  if (b.size() > 1024) return "<int of " + std::to_string(b.size()) + " bytes>";  // quadratic below
  const bool neg = static_cast<uint8_t>(b.back()) & 0x80;
  std::vector<uint8_t> mag(b.begin(), b.end());
  if (neg) {  // magnitude = ~x + 1
    unsigned carry = 1;
    for (auto& byte : mag) {
      unsigned t = static_cast<uint8_t>(~byte) + carry;
      byte = static_cast<uint8_t>(t);
      carry = t >> 8;
    }
  }
  std::string digits;
  for (;;) {
    bool zero = true;
    unsigned rem = 0;
    for (size_t k = mag.size(); k-- > 0;) {
      unsigned cur = (rem << 8) | mag[k];
      mag[k] = static_cast<uint8_t>(cur / 10);
      rem = cur % 10;
      if (mag[k]) zero = false;
    }
    digits.push_back(static_cast<char>('0' + rem));
    if (zero) break;
  }
  if (neg) digits.push_back('-');
  return std::string(digits.rbegin(), digits.rend());
}

// Decimal text (optional sign) to a Value int; false when not a number.
bool decimal_to_int(std::string_view text, Value* v) {
  bool neg = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    neg = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text.empty() || text.size() > 5000)
    return false;  // Python's own int-from-text limit is 4300 digits
  std::vector<uint8_t> mag(1, 0);
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    unsigned carry = static_cast<unsigned>(c - '0');
    for (auto& byte : mag) {
      unsigned t = byte * 10u + carry;
      byte = static_cast<uint8_t>(t);
      carry = t >> 8;
    }
    if (carry) mag.push_back(static_cast<uint8_t>(carry));
  }
  mag.push_back(0);  // room for the sign bit
  if (neg) {
    unsigned carry = 1;
    for (auto& byte : mag) {
      unsigned t = static_cast<uint8_t>(~byte) + carry;
      byte = static_cast<uint8_t>(t);
      carry = t >> 8;
    }
  }
  set_int_from_bytes(v, std::string_view(reinterpret_cast<const char*>(mag.data()), mag.size()));
  return true;
}

bool utf8_to_latin1(std::string_view in, std::string* out) {
  for (size_t k = 0; k < in.size(); ++k) {
    uint8_t c = static_cast<uint8_t>(in[k]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if ((c & 0xe0) == 0xc0 && k + 1 < in.size()) {
      unsigned cp = ((c & 0x1fu) << 6) | (static_cast<uint8_t>(in[k + 1]) & 0x3fu);
      if (cp > 0xff) return false;
      out->push_back(static_cast<char>(cp));
      ++k;
    } else {
      return false;
    }
  }
  return true;
}

std::string latin1_to_utf8(std::string_view in) {
  std::string out;
  for (char ch : in) {
    uint8_t c = static_cast<uint8_t>(ch);
    if (c < 0x80) {
      out.push_back(ch);
    } else {
      out.push_back(static_cast<char>(0xc0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return out;
}

class Unpickler {
 public:
  Unpickler(std::string_view data, const UnpickleOptions& opts, Document& doc)
      : d_(data), opts_(opts), doc_(doc) {}

  Status run();

 private:
  bool need(size_t n) const { return d_.size() - p_ >= n; }
  Status take(size_t n, std::string_view* out) {
    if (!need(n)) return bad("unexpected end of data");
    *out = d_.substr(p_, n);
    p_ += n;
    return {};
  }
  Status line(std::string_view* out) {
    size_t nl = d_.find('\n', p_);
    if (nl == std::string_view::npos) return bad("unterminated text line");
    *out = d_.substr(p_, nl - p_);
    p_ = nl + 1;
    return {};
  }
  template <class T>
  Status le(T* out, size_t n) {
    std::string_view b;
    CKPT_RETURN_IF_ERROR(take(n, &b));
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
    *out = static_cast<T>(v);
    return {};
  }
  Result<Value*> pop() {
    if (stack_.size() <= floor()) return bad("stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Result<Value*> top() {
    if (stack_.size() <= floor()) return bad("stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Result<std::vector<Value*>> pop_mark() {
    if (marks_.empty()) return bad("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Status charge(size_t n) {
    copied_ += n;
    if (copied_ > opts_.max_values * 4) return bad("too many values");
    return {};
  }
  Result<Value*> make(Kind k) {
    if (doc_.size() >= opts_.max_values) return bad("too many values");
    return doc_.make(k);
  }
  Status push_new(Kind k, Value** out = nullptr) {
    CKPT_ASSIGN_OR_RETURN(Value * v, make(k));
    stack_.push_back(v);
    if (out) *out = v;
    return {};
  }
  Status global(std::string module, std::string name);
  Status reduce(Value* callee, Value* args, Value** out);
  Status persistent(Value* pid, Value** out);
  Status set_items(Value* target, const std::vector<Value*>& items);

  std::string_view d_;
  size_t p_ = 0;
  const UnpickleOptions& opts_;
  Document& doc_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  size_t copied_ = 0;
};

Status Unpickler::global(std::string module, std::string name) {
  Value* g;
  if (!is_allowed_global(module, name)) {
    std::string full = module + "." + name;
    if (opts_.strict) {
      return Status(Errc::kUnsupported, "refusing non-allow-listed global '" + full +
                                            "' in the pickle (ckpt never executes pickled code)");
    }
    bool seen = false;
    for (const auto& u : doc_.unsafe_globals) seen = seen || u == full;
    if (!seen) doc_.unsafe_globals.push_back(full);
  }
  CKPT_RETURN_IF_ERROR(push_new(Kind::kGlobal, &g));
  g->s = std::move(module);
  g->name = std::move(name);
  return {};
}

Status Unpickler::persistent(Value* pid, Value** out) {
  auto str_of = [](const Value* v) -> const std::string* {
    return v && (v->kind == Kind::kStr || v->kind == Kind::kBytes) ? &v->s : nullptr;
  };
  if (pid->kind != Kind::kTuple || pid->items.size() < 5 || !str_of(pid->items[0]) ||
      *str_of(pid->items[0]) != "storage") {
    return Status(Errc::kUnsupported,
                  "unsupported persistent id in the pickle (only torch storages are)");
  }
  Value* cls = pid->items[1];
  const std::string* key = str_of(pid->items[2]);
  const std::string* loc = str_of(pid->items[3]);
  Value* numel = pid->items[4];
  if (cls->kind != Kind::kGlobal || !key || !loc || numel->kind != Kind::kInt ||
      !numel->big.empty() || numel->i < 0) {
    return bad("storage reference has unexpected fields");
  }
  auto dtype = dtype_of_storage_class(cls->name);
  if (dtype.empty() || cls->s != "torch") {
    return Status(Errc::kUnsupported, "unknown storage class " + cls->global_name());
  }
  CKPT_ASSIGN_OR_RETURN(Value * v, make(Kind::kStorage));
  v->tensor = std::make_shared<TensorRef>();
  v->tensor->dtype = std::string(dtype);
  v->tensor->storage_class = cls->name;
  v->tensor->storage_key = *key;
  v->tensor->device = *loc;
  v->tensor->storage_numel = static_cast<uint64_t>(numel->i);
  *out = v;
  return {};
}

bool int_list(const Value* v, std::vector<int64_t>* out) {
  if (!v || (v->kind != Kind::kTuple && v->kind != Kind::kList)) return false;
  for (const Value* x : v->items) {
    if (x->kind != Kind::kInt || !x->big.empty()) return false;
    out->push_back(x->i);
  }
  return true;
}

Status Unpickler::reduce(Value* callee, Value* args, Value** out) {
  if (args->kind != Kind::kTuple) return bad("REDUCE arguments are not a tuple");
  const auto& a = args->items;
  // Arguments are copied into the result: charge them, so reusing one big memoized list in
  // many calls cannot turn a small input into quadratic memory.
  size_t cost = a.size();
  for (const Value* x : a) cost += x->items.size();
  CKPT_RETURN_IF_ERROR(charge(cost));
  if (callee->kind == Kind::kGlobal && is_allowed_global(callee->s, callee->name)) {
    const std::string& m = callee->s;
    const std::string& n = callee->name;
    if (m == "collections" && n == "OrderedDict") {
      CKPT_ASSIGN_OR_RETURN(Value * d, make(Kind::kDict));
      d->ordered = true;
      *out = d;
      return {};
    }
    if (m == "torch._utils" && (n == "_rebuild_tensor_v2" || n == "_rebuild_tensor")) {
      if (a.size() < 4 || a[0]->kind != Kind::kStorage || a[1]->kind != Kind::kInt) {
        return bad("unexpected arguments to " + n);
      }
      auto t = std::make_shared<TensorRef>(*a[0]->tensor);
      t->offset = a[1]->i;
      if (!int_list(a[2], &t->shape) || !int_list(a[3], &t->stride) ||
          t->shape.size() != t->stride.size()) {
        return bad("tensor shape or stride is malformed");
      }
      if (a.size() > 4 && a[4]->kind == Kind::kBool) t->requires_grad = a[4]->b;
      CKPT_ASSIGN_OR_RETURN(Value * v, make(Kind::kTensor));
      v->tensor = std::move(t);
      *out = v;
      return {};
    }
    if (m == "torch._utils" &&
        (n == "_rebuild_parameter" || n == "_rebuild_parameter_with_state")) {
      if (a.empty() || a[0]->kind != Kind::kTensor) return bad("unexpected arguments to " + n);
      auto t = std::make_shared<TensorRef>(*a[0]->tensor);
      t->parameter = true;
      if (a.size() > 1 && a[1]->kind == Kind::kBool) t->requires_grad = a[1]->b;
      CKPT_ASSIGN_OR_RETURN(Value * v, make(Kind::kTensor));
      v->tensor = std::move(t);
      *out = v;
      return {};
    }
    if (is_builtins(m) && (n == "set" || n == "frozenset")) {
      CKPT_ASSIGN_OR_RETURN(Value * v, make(Kind::kSet));
      v->frozen = n == "frozenset";
      if (!a.empty()) {
        if (a[0]->kind != Kind::kList && a[0]->kind != Kind::kTuple)
          return bad("set() of a non-list");
        v->items = a[0]->items;
      }
      *out = v;
      return {};
    }
    if ((m == "_codecs" && n == "encode") ||
        (is_builtins(m) && (n == "bytes" || n == "bytearray"))) {
      CKPT_ASSIGN_OR_RETURN(Value * v, make(Kind::kBytes));
      if (!a.empty()) {
        if (a[0]->kind == Kind::kBytes) {
          v->s = a[0]->s;
        } else if (a[0]->kind != Kind::kStr || !utf8_to_latin1(a[0]->s, &v->s)) {
          return bad("bytes encoded in an unexpected way");
        }
      }
      *out = v;
      return {};
    }
    if (m == "torch" && n == "Size") {
      CKPT_ASSIGN_OR_RETURN(Value * v, make(Kind::kTuple));
      if (!a.empty() && (a[0]->kind == Kind::kTuple || a[0]->kind == Kind::kList))
        v->items = a[0]->items;
      *out = v;
      return {};
    }
  }
  CKPT_ASSIGN_OR_RETURN(Value * o, make(Kind::kObject));
  o->callee = callee;
  o->items = a;
  *out = o;
  return {};
}

Status Unpickler::set_items(Value* target, const std::vector<Value*>& items) {
  if (target->kind != Kind::kDict) return bad("SETITEM(S) on a value that is not a dict");
  if (items.size() % 2) return bad("odd number of dict items");
  target->items.insert(target->items.end(), items.begin(), items.end());
  return {};
}

Status Unpickler::run() {
  for (;;) {
    if (!need(1)) return bad("unexpected end of data (no STOP)");
    const uint8_t op = static_cast<uint8_t>(d_[p_++]);
    Value* v = nullptr;
    std::string_view b;
    switch (op) {
      case 0x80: {  // PROTO
        uint8_t proto = 0;
        CKPT_RETURN_IF_ERROR(le(&proto, 1));
        if (proto > 5) return bad("unknown protocol " + std::to_string(proto));
        break;
      }
      case 0x95: {  // FRAME
        uint64_t n = 0;
        CKPT_RETURN_IF_ERROR(le(&n, 8));
        break;
      }
      case '.': {  // STOP
        CKPT_ASSIGN_OR_RETURN(doc_.root, pop());
        return {};
      }
      case '(':
        marks_.push_back(stack_.size());
        break;
      case '0':
        CKPT_RETURN_IF_ERROR(pop().status());
        break;
      case '1':
        CKPT_RETURN_IF_ERROR(pop_mark().status());
        break;
      case '2': {
        CKPT_ASSIGN_OR_RETURN(v, top());
        stack_.push_back(v);
        break;
      }
      case 'N':
        CKPT_RETURN_IF_ERROR(push_new(Kind::kNone));
        break;
      case 0x88:
      case 0x89:
        CKPT_RETURN_IF_ERROR(push_new(Kind::kBool, &v));
        v->b = op == 0x88;
        break;
      case 'I': {
        CKPT_RETURN_IF_ERROR(line(&b));
        CKPT_RETURN_IF_ERROR(push_new(Kind::kInt, &v));
        if (b == "01" || b == "00") {
          v->kind = Kind::kBool;
          v->b = b == "01";
        } else if (!decimal_to_int(b, v)) {
          return bad("INT with bad text");
        }
        break;
      }
      case 'L': {
        CKPT_RETURN_IF_ERROR(line(&b));
        if (!b.empty() && b.back() == 'L') b.remove_suffix(1);
        CKPT_RETURN_IF_ERROR(push_new(Kind::kInt, &v));
        if (!decimal_to_int(b, v)) return bad("LONG with bad text");
        break;
      }
      case 'J': {
        int32_t x = 0;
        CKPT_RETURN_IF_ERROR(le(&x, 4));
        CKPT_RETURN_IF_ERROR(push_new(Kind::kInt, &v));
        v->i = x;
        break;
      }
      case 'K': {
        uint8_t x = 0;
        CKPT_RETURN_IF_ERROR(le(&x, 1));
        CKPT_RETURN_IF_ERROR(push_new(Kind::kInt, &v));
        v->i = x;
        break;
      }
      case 'M': {
        uint16_t x = 0;
        CKPT_RETURN_IF_ERROR(le(&x, 2));
        CKPT_RETURN_IF_ERROR(push_new(Kind::kInt, &v));
        v->i = x;
        break;
      }
      case 0x8a:
      case 0x8b: {  // LONG1, LONG4
        uint32_t n = 0;
        CKPT_RETURN_IF_ERROR(le(&n, op == 0x8a ? 1 : 4));
        CKPT_RETURN_IF_ERROR(take(n, &b));
        CKPT_RETURN_IF_ERROR(push_new(Kind::kInt, &v));
        set_int_from_bytes(v, b);
        break;
      }
      case 'F': {
        CKPT_RETURN_IF_ERROR(line(&b));
        std::string text(b);
        char* end = nullptr;
        double x = std::strtod(text.c_str(), &end);
        if (text.empty() || *end) return bad("FLOAT with bad text");
        CKPT_RETURN_IF_ERROR(push_new(Kind::kFloat, &v));
        v->f = x;
        break;
      }
      case 'G': {
        uint64_t bits = 0;
        CKPT_RETURN_IF_ERROR(take(8, &b));
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(b[k]);  // big-endian
        CKPT_RETURN_IF_ERROR(push_new(Kind::kFloat, &v));
        std::memcpy(&v->f, &bits, 8);
        break;
      }
      case 'U':     // SHORT_BINSTRING
      case 'T':     // BINSTRING
      case 'X':     // BINUNICODE
      case 0x8c:    // SHORT_BINUNICODE
      case 0x8d:    // BINUNICODE8
      case 'B':     // BINBYTES
      case 'C':     // SHORT_BINBYTES
      case 0x8e:    // BINBYTES8
      case 0x96: {  // BYTEARRAY8
        uint64_t n = 0;
        size_t width = (op == 'U' || op == 0x8c || op == 'C')     ? 1
                       : (op == 0x8d || op == 0x8e || op == 0x96) ? 8
                                                                  : 4;
        CKPT_RETURN_IF_ERROR(le(&n, width));
        if (!need(n)) return bad("string runs past the end of data");
        CKPT_RETURN_IF_ERROR(take(static_cast<size_t>(n), &b));
        const bool is_str = op == 'X' || op == 0x8c || op == 0x8d || op == 'U' || op == 'T';
        CKPT_RETURN_IF_ERROR(push_new(is_str ? Kind::kStr : Kind::kBytes, &v));
        // Python 2 strings (U, T) hold bytes; torch reads them as text (ASCII keys).
        v->s = (op == 'U' || op == 'T') ? latin1_to_utf8(b) : std::string(b);
        break;
      }
      case 'S':
      case 'V':
        return Status(Errc::kUnsupported, "protocol-0 text strings are not supported in pickles");
      case ')':
        CKPT_RETURN_IF_ERROR(push_new(Kind::kTuple));
        break;
      case 't': {
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        CKPT_RETURN_IF_ERROR(push_new(Kind::kTuple, &v));
        v->items = std::move(items);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        size_t n = op - 0x84u;
        if (stack_.size() < floor() + n) return bad("stack underflow in TUPLE" + std::to_string(n));
        CKPT_ASSIGN_OR_RETURN(v, make(Kind::kTuple));
        v->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        stack_.push_back(v);
        break;
      }
      case ']':
        CKPT_RETURN_IF_ERROR(push_new(Kind::kList));
        break;
      case 'l': {
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        CKPT_RETURN_IF_ERROR(push_new(Kind::kList, &v));
        v->items = std::move(items);
        break;
      }
      case 'a': {
        CKPT_ASSIGN_OR_RETURN(Value * item, pop());
        CKPT_ASSIGN_OR_RETURN(v, top());
        if (v->kind != Kind::kList) return bad("APPEND to a value that is not a list");
        v->items.push_back(item);
        break;
      }
      case 'e': {
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        CKPT_ASSIGN_OR_RETURN(v, top());
        if (v->kind != Kind::kList) return bad("APPENDS to a value that is not a list");
        v->items.insert(v->items.end(), items.begin(), items.end());
        break;
      }
      case '}':
        CKPT_RETURN_IF_ERROR(push_new(Kind::kDict));
        break;
      case 'd': {
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        CKPT_RETURN_IF_ERROR(push_new(Kind::kDict, &v));
        CKPT_RETURN_IF_ERROR(set_items(v, items));
        break;
      }
      case 's': {
        CKPT_ASSIGN_OR_RETURN(Value * val, pop());
        CKPT_ASSIGN_OR_RETURN(Value * key, pop());
        CKPT_ASSIGN_OR_RETURN(v, top());
        CKPT_RETURN_IF_ERROR(set_items(v, {key, val}));
        break;
      }
      case 'u': {
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        CKPT_ASSIGN_OR_RETURN(v, top());
        CKPT_RETURN_IF_ERROR(set_items(v, items));
        break;
      }
      case 0x8f:
        CKPT_RETURN_IF_ERROR(push_new(Kind::kSet));
        break;
      case 0x90: {  // ADDITEMS
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        CKPT_ASSIGN_OR_RETURN(v, top());
        if (v->kind != Kind::kSet) return bad("ADDITEMS to a value that is not a set");
        v->items.insert(v->items.end(), items.begin(), items.end());
        break;
      }
      case 0x91: {  // FROZENSET
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        CKPT_RETURN_IF_ERROR(push_new(Kind::kSet, &v));
        v->frozen = true;
        v->items = std::move(items);
        break;
      }
      case 'c': {  // GLOBAL
        std::string_view m, n;
        CKPT_RETURN_IF_ERROR(line(&m));
        CKPT_RETURN_IF_ERROR(line(&n));
        CKPT_RETURN_IF_ERROR(global(std::string(m), std::string(n)));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        CKPT_ASSIGN_OR_RETURN(Value * n, pop());
        CKPT_ASSIGN_OR_RETURN(Value * m, pop());
        if (m->kind != Kind::kStr || n->kind != Kind::kStr)
          return bad("STACK_GLOBAL of non-strings");
        CKPT_RETURN_IF_ERROR(global(m->s, n->s));
        break;
      }
      case 'R': {  // REDUCE
        CKPT_ASSIGN_OR_RETURN(Value * args, pop());
        CKPT_ASSIGN_OR_RETURN(Value * callee, pop());
        CKPT_RETURN_IF_ERROR(reduce(callee, args, &v));
        stack_.push_back(v);
        break;
      }
      case 0x81:    // NEWOBJ
      case 0x92: {  // NEWOBJ_EX
        Value* kwargs = nullptr;
        if (op == 0x92) {
          CKPT_ASSIGN_OR_RETURN(kwargs, pop());
        }
        CKPT_ASSIGN_OR_RETURN(Value * args, pop());
        CKPT_ASSIGN_OR_RETURN(Value * cls, pop());
        if (args->kind != Kind::kTuple) return bad("NEWOBJ arguments are not a tuple");
        CKPT_RETURN_IF_ERROR(charge(args->items.size()));
        if (cls->kind == Kind::kGlobal && cls->s == "torch.nn.parameter" &&
            cls->name == "Parameter" && !args->items.empty() &&
            args->items[0]->kind == Kind::kTensor) {
          CKPT_RETURN_IF_ERROR(push_new(Kind::kTensor, &v));
          v->tensor = std::make_shared<TensorRef>(*args->items[0]->tensor);
          v->tensor->parameter = true;
          if (args->items.size() > 1 && args->items[1]->kind == Kind::kBool) {
            v->tensor->requires_grad = args->items[1]->b;
          }
          break;
        }
        CKPT_RETURN_IF_ERROR(push_new(Kind::kObject, &v));
        v->callee = cls;
        v->items = args->items;
        if (kwargs) v->state = kwargs;
        break;
      }
      case 'i': {  // INST: module, name lines; args since MARK
        std::string_view m, n;
        CKPT_RETURN_IF_ERROR(line(&m));
        CKPT_RETURN_IF_ERROR(line(&n));
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        CKPT_RETURN_IF_ERROR(global(std::string(m), std::string(n)));
        Value* cls = stack_.back();
        stack_.pop_back();
        CKPT_RETURN_IF_ERROR(push_new(Kind::kObject, &v));
        v->callee = cls;
        v->items = std::move(items);
        break;
      }
      case 'o': {  // OBJ: MARK cls args...
        CKPT_ASSIGN_OR_RETURN(auto items, pop_mark());
        if (items.empty()) return bad("OBJ without a class");
        Value* cls = items[0];
        if (cls->kind != Kind::kGlobal) return bad("OBJ of a non-class");
        CKPT_RETURN_IF_ERROR(push_new(Kind::kObject, &v));
        v->callee = cls;
        v->items.assign(items.begin() + 1, items.end());
        break;
      }
      case 'b': {  // BUILD
        CKPT_ASSIGN_OR_RETURN(Value * st, pop());
        CKPT_ASSIGN_OR_RETURN(v, top());
        if (v->kind == Kind::kDict || v->kind == Kind::kObject) {
          v->state = st;
        } else if (v->kind != Kind::kTensor) {
          return bad("BUILD on a value that takes no state");
        }
        break;
      }
      case 'P':
      case 'Q': {  // PERSID, BINPERSID
        Value* pid;
        if (op == 'P') {
          return Status(Errc::kUnsupported, "text persistent ids are not supported");
        }
        CKPT_ASSIGN_OR_RETURN(pid, pop());
        CKPT_RETURN_IF_ERROR(persistent(pid, &v));
        stack_.push_back(v);
        break;
      }
      case 'p': {
        CKPT_RETURN_IF_ERROR(line(&b));
        Value tmp;
        if (!decimal_to_int(b, &tmp) || !tmp.big.empty() || tmp.i < 0)
          return bad("PUT with bad index");
        CKPT_ASSIGN_OR_RETURN(memo_[static_cast<uint64_t>(tmp.i)], top());
        break;
      }
      case 'q':
      case 'r': {
        uint32_t idx = 0;
        CKPT_RETURN_IF_ERROR(le(&idx, op == 'q' ? 1 : 4));
        CKPT_ASSIGN_OR_RETURN(memo_[idx], top());
        break;
      }
      case 0x94: {  // MEMOIZE
        CKPT_ASSIGN_OR_RETURN(Value * t, top());
        memo_[memo_.size()] = t;
        break;
      }
      case 'g':
      case 'h':
      case 'j': {
        uint64_t idx = 0;
        if (op == 'g') {
          CKPT_RETURN_IF_ERROR(line(&b));
          Value tmp;
          if (!decimal_to_int(b, &tmp) || !tmp.big.empty() || tmp.i < 0)
            return bad("GET with bad index");
          idx = static_cast<uint64_t>(tmp.i);
        } else {
          uint32_t x = 0;
          CKPT_RETURN_IF_ERROR(le(&x, op == 'h' ? 1 : 4));
          idx = x;
        }
        auto it = memo_.find(idx);
        if (it == memo_.end()) return bad("memo index " + std::to_string(idx) + " not set");
        stack_.push_back(it->second);
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        return Status(Errc::kUnsupported, std::string("unsupported pickle opcode ") + hex +
                                              " at offset " + std::to_string(p_ - 1));
      }
    }
  }
}

// ---- writer ----

class Pickler {
 public:
  explicit Pickler(const PickleWriteOptions& opts) : opts_(opts) {}
  Status value(const Value& v, size_t depth);
  std::string out;

 private:
  void op(uint8_t c) { out.push_back(static_cast<char>(c)); }
  void u32(uint32_t x) {
    for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>((x >> (8 * k)) & 0xff));
  }
  void str(std::string_view s) {
    op('X');
    u32(static_cast<uint32_t>(s.size()));
    out.append(s);
  }
  void integer(int64_t x) {
    if (x >= 0 && x < 256) {
      op('K');
      op(static_cast<uint8_t>(x));
    } else if (x >= 0 && x < 65536) {
      op('M');
      op(static_cast<uint8_t>(x & 0xff));
      op(static_cast<uint8_t>(x >> 8));
    } else if (x >= INT32_MIN && x <= INT32_MAX) {
      op('J');
      u32(static_cast<uint32_t>(static_cast<int32_t>(x)));
    } else {
      long_bytes(int64_bytes(x));
    }
  }
  void long_bytes(const std::string& b) {
    if (b.size() < 256) {
      op(0x8a);
      op(static_cast<uint8_t>(b.size()));
    } else {
      op(0x8b);
      u32(static_cast<uint32_t>(b.size()));
    }
    out.append(b);
  }
  Status global(std::string_view m, std::string_view n) {
    if (m.find('\n') != std::string_view::npos || n.find('\n') != std::string_view::npos) {
      return Status(Errc::kInvalidArgument, "global name contains a newline");
    }
    op('c');
    out.append(m);
    op('\n');
    out.append(n);
    op('\n');
    return {};
  }
  void empty_ordered_dict() {
    (void)global("collections", "OrderedDict");
    op(')');
    op('R');
  }
  Status tuple_of(const std::vector<Value*>& items, size_t depth) {
    if (items.empty()) {
      op(')');
      return {};
    }
    if (items.size() > 3) op('(');
    for (const Value* x : items) CKPT_RETURN_IF_ERROR(value(*x, depth + 1));
    op(items.size() == 1 ? 0x85 : items.size() == 2 ? 0x86 : items.size() == 3 ? 0x87 : 't');
    return {};
  }
  void int_tuple(const std::vector<int64_t>& xs) {
    if (xs.size() > 3 || xs.empty()) op(xs.empty() ? ')' : '(');
    for (int64_t x : xs) integer(x);
    if (!xs.empty())
      op(xs.size() == 1 ? 0x85 : xs.size() == 2 ? 0x86 : xs.size() == 3 ? 0x87 : 't');
  }
  Status tensor(const TensorRef& t);

  const PickleWriteOptions& opts_;
};

Status Pickler::tensor(const TensorRef& t) {
  if (t.parameter) CKPT_RETURN_IF_ERROR(global("torch._utils", "_rebuild_parameter"));
  CKPT_RETURN_IF_ERROR(global("torch._utils", "_rebuild_tensor_v2"));
  op('(');
  // The storage as a persistent id, exactly as torch.save writes it.
  op('(');
  str("storage");
  CKPT_RETURN_IF_ERROR(global("torch", t.storage_class));
  str(opts_.storage_key ? opts_.storage_key(t) : t.storage_key);
  str(t.device);
  integer(static_cast<int64_t>(t.storage_numel));
  op('t');
  op('Q');
  integer(t.offset);
  int_tuple(t.shape);
  int_tuple(t.stride);
  op(t.requires_grad ? 0x88 : 0x89);
  empty_ordered_dict();
  op('t');
  op('R');
  if (t.parameter) {
    op(t.requires_grad ? 0x88 : 0x89);
    empty_ordered_dict();
    op(0x87);
    op('R');
  }
  return {};
}

Status Pickler::value(const Value& v, size_t depth) {
  if (depth > kMaxDepth)
    return Status(Errc::kInvalidArgument, "value nests too deeply (or contains itself)");
  switch (v.kind) {
    case Kind::kNone:
      op('N');
      return {};
    case Kind::kBool:
      op(v.b ? 0x88 : 0x89);
      return {};
    case Kind::kInt:
      if (v.big.empty()) {
        integer(v.i);
      } else {
        long_bytes(v.big);
      }
      return {};
    case Kind::kFloat: {
      uint64_t bits;
      std::memcpy(&bits, &v.f, 8);
      op('G');
      for (int k = 7; k >= 0; --k) op(static_cast<uint8_t>((bits >> (8 * k)) & 0xff));
      return {};
    }
    case Kind::kStr:
      str(v.s);
      return {};
    case Kind::kBytes:
      // Protocol 2 has no bytes opcode: Python writes _codecs.encode(latin-1 text, 'latin1').
      CKPT_RETURN_IF_ERROR(global("_codecs", "encode"));
      str(latin1_to_utf8(v.s));
      str("latin1");
      op(0x86);
      op('R');
      return {};
    case Kind::kTuple:
      return tuple_of(v.items, depth);
    case Kind::kList:
      op(']');
      for (size_t k = 0; k < v.items.size(); k += 1000) {
        op('(');
        for (size_t j = k; j < std::min(v.items.size(), k + 1000); ++j) {
          CKPT_RETURN_IF_ERROR(value(*v.items[j], depth + 1));
        }
        op('e');
      }
      return {};
    case Kind::kSet:
      CKPT_RETURN_IF_ERROR(global("builtins", v.frozen ? "frozenset" : "set"));
      op(']');
      if (!v.items.empty()) {
        op('(');
        for (const Value* x : v.items) CKPT_RETURN_IF_ERROR(value(*x, depth + 1));
        op('e');
      }
      op(0x85);
      op('R');
      return {};
    case Kind::kDict:
      if (v.ordered) {
        empty_ordered_dict();
      } else {
        op('}');
      }
      for (size_t k = 0; k + 1 < v.items.size(); k += 2000) {
        op('(');
        for (size_t j = k; j < std::min(v.items.size(), k + 2000); ++j) {
          CKPT_RETURN_IF_ERROR(value(*v.items[j], depth + 1));
        }
        op('u');
      }
      if (v.ordered && v.state) {
        CKPT_RETURN_IF_ERROR(value(*v.state, depth + 1));
        op('b');
      }
      return {};
    case Kind::kTensor:
      return tensor(*v.tensor);
    case Kind::kStorage:
      return Status(Errc::kUnsupported, "a bare storage (not inside a tensor) cannot be written");
    case Kind::kGlobal:
      if (!is_allowed_global(v.s, v.name)) {
        return Status(Errc::kUnsupported,
                      "refusing to write non-allow-listed global '" + v.global_name() + "'");
      }
      return global(v.s, v.name);
    case Kind::kObject:
      if (!v.callee || v.callee->kind != Kind::kGlobal ||
          !is_allowed_global(v.callee->s, v.callee->name)) {
        return Status(
            Errc::kUnsupported,
            "refusing to write an object of non-allow-listed type '" +
                (v.callee && v.callee->kind == Kind::kGlobal ? v.callee->global_name() : "?") +
                "'");
      }
      CKPT_RETURN_IF_ERROR(global(v.callee->s, v.callee->name));
      CKPT_RETURN_IF_ERROR(tuple_of(v.items, depth));
      op('R');
      if (v.state) {
        CKPT_RETURN_IF_ERROR(value(*v.state, depth + 1));
        op('b');
      }
      return {};
  }
  return Status(Errc::kInternal, "unknown value kind");
}

const Value* child_of(const Value* v, size_t k) {
  if (k < v->items.size()) return v->items[k];
  k -= v->items.size();
  if (v->state && k-- == 0) return v->state;
  if (v->callee && k == 0) return v->callee;
  return nullptr;
}

// Memo references can share containers, so a small pickle could describe a huge tree (or a
// cycle). Every consumer walks the tree, so bound it once here: no cycles, bounded depth, and
// at most `limit` nodes when expanded.
Status check_tree(const Value* root, uint64_t limit) {
  struct Frame {
    const Value* v;
    size_t next;
    uint64_t total;
  };
  std::unordered_map<const Value*, uint64_t> done;
  std::unordered_map<const Value*, bool> open;
  std::vector<Frame> st{{root, 0, 1}};
  open[root] = true;
  while (!st.empty()) {
    Frame& f = st.back();
    const Value* c = child_of(f.v, f.next++);
    if (!c) {
      uint64_t total = f.total;
      done[f.v] = total;
      open.erase(f.v);
      st.pop_back();
      if (!st.empty()) st.back().total += total;
    } else if (auto it = done.find(c); it != done.end()) {
      f.total += it->second;
    } else if (open.count(c)) {
      return Status(Errc::kUnsupported, "pickle contains a value that contains itself");
    } else {
      if (st.size() >= kMaxDepth)
        return Status(Errc::kUnsupported, "pickle nests values too deeply");
      open[c] = true;
      st.push_back({c, 0, 1});
      continue;
    }
    if (!st.empty() && st.back().total > limit) {
      return Status(Errc::kUnsupported, "pickle expands to too many values (shared containers)");
    }
  }
  return {};
}

}  // namespace

uint64_t TensorRef::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d < 0 ? 0 : d);
  return n;
}

bool TensorRef::contiguous() const {
  int64_t expected = 1;
  for (size_t k = shape.size(); k-- > 0;) {
    if (shape[k] == 1) continue;
    if (stride[k] != expected) return numel() == 0;
    expected *= shape[k];
  }
  return true;
}

Value* Document::make(Kind kind) {
  values_.emplace_back();
  values_.back().kind = kind;
  return &values_.back();
}
Value* Document::make_str(std::string s) {
  Value* v = make(Kind::kStr);
  v->s = std::move(s);
  return v;
}
Value* Document::make_int(int64_t x) {
  Value* v = make(Kind::kInt);
  v->i = x;
  return v;
}

bool is_allowed_global(std::string_view m, std::string_view n) {
  if (m == "collections" && n == "OrderedDict") return true;
  if (m == "torch._utils") {
    return n == "_rebuild_tensor_v2" || n == "_rebuild_tensor" || n == "_rebuild_parameter" ||
           n == "_rebuild_parameter_with_state" || n == "_rebuild_sparse_tensor" ||
           n == "_rebuild_meta_tensor_no_storage" || n == "_rebuild_sparse_csr_tensor" ||
           n == "_rebuild_qtensor" || n == "_rebuild_device_tensor_from_numpy" ||
           n == "_rebuild_wrapper_subclass" || n == "_rebuild_tensor_v3";
  }
  if (m == "torch.nn.parameter" && n == "Parameter") return true;
  if (m == "torch.serialization" && n == "_get_layout") return true;
  if (is_builtins(m)) return n == "set" || n == "frozenset" || n == "bytes" || n == "bytearray";
  if (m == "_codecs" && n == "encode") return true;
  if (m == "torch") {
    if (n == "Size" || n == "Tensor" || n == "device" || n == "dtype" || n == "FloatTensor" ||
        n == "DoubleTensor" || n == "HalfTensor" || n == "BFloat16Tensor" || n == "LongTensor" ||
        n == "IntTensor" || n == "ShortTensor" || n == "CharTensor" || n == "ByteTensor" ||
        n == "BoolTensor" || n == "UntypedStorage" || n == "TypedStorage")
      return true;
    if (!dtype_of_storage_class(n).empty()) return true;
    for (const char* d : kDtypeGlobals) {
      if (n == d) return true;
    }
  }
  return false;
}

std::string_view dtype_of_storage_class(std::string_view cls) {
  for (const auto& d : kDtypes) {
    if (cls == d.cls) return d.dtype;
  }
  return {};
}
std::string_view storage_class_of_dtype(std::string_view dtype) {
  for (const auto& d : kDtypes) {
    if (dtype == d.dtype) return d.cls;
  }
  return {};
}
size_t dtype_size(std::string_view dtype) {
  for (const auto& d : kDtypes) {
    if (dtype == d.dtype) return d.size;
  }
  return 0;
}

bool int_from_decimal(std::string_view text, Value* v) { return decimal_to_int(text, v); }

std::string int_to_string(const Value& v) {
  if (!v.big.empty()) return big_to_decimal(v.big);
  return std::to_string(v.i);
}

std::string key_repr(const Value& v) {
  switch (v.kind) {
    case Kind::kStr:
      return v.s;
    case Kind::kInt:
      return int_to_string(v);
    case Kind::kBool:
      return v.b ? "True" : "False";
    case Kind::kNone:
      return "None";
    case Kind::kFloat: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.f);
      return buf;
    }
    case Kind::kGlobal:
      return v.global_name();
    default:
      return "<" + std::string(v.kind == Kind::kTuple ? "tuple" : "value") + ">";
  }
}

Result<std::unique_ptr<Document>> unpickle(std::string_view data, const UnpickleOptions& opts) {
  auto doc = std::make_unique<Document>();
  Unpickler u(data, opts, *doc);
  CKPT_RETURN_IF_ERROR(u.run());
  CKPT_RETURN_IF_ERROR(check_tree(doc->root, 8 * doc->size() + 1'000'000));
  return doc;
}

Result<std::string> pickle(const Value& v, const PickleWriteOptions& opts) {
  Pickler p(opts);
  p.out = "\x80\x02";
  CKPT_RETURN_IF_ERROR(p.value(v, 0));
  p.out.push_back('.');
  return std::move(p.out);
}

}  // namespace ckpt::torch
