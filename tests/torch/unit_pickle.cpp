#include <doctest/doctest.h>

#include "ckpt/torch/pickle.h"

using namespace ckpt;
using namespace ckpt::torch;

namespace {

Result<std::unique_ptr<Document>> load(std::string_view bytes, bool strict = true) {
  UnpickleOptions o;
  o.strict = strict;
  o.max_values = bytes.size() * 2 + 16;
  return unpickle(bytes, o);
}

std::string repickle(const std::string& bytes) {
  auto d = load(bytes);
  REQUIRE(d.ok());
  auto p = pickle(*(*d)->root, {});
  REQUIRE(p.ok());
  return *p;
}

}  // namespace

TEST_CASE("pickle: every value kind survives write -> read -> write unchanged") {
  Document doc;
  Value* root = doc.make(Kind::kDict);
  root->ordered = true;
  auto add = [&](const char* k, Value* v) {
    root->items.push_back(doc.make_str(k));
    root->items.push_back(v);
  };
  add("none", doc.make(Kind::kNone));
  Value* b = doc.make(Kind::kBool);
  b->b = true;
  add("bool", b);
  for (int64_t x :
       std::initializer_list<int64_t>{0ll, 255ll, 256ll, 65535ll, 65536ll, -1ll, 2147483647ll,
                                      -2147483648ll, 1ll << 40, INT64_MIN, INT64_MAX}) {
    add(("int" + std::to_string(x)).c_str(), doc.make_int(x));
  }
  Value* big = doc.make(Kind::kInt);
  REQUIRE(int_from_decimal("1267650600228229401496703205376", big));  // 2**100
  add("big", big);
  Value* f = doc.make(Kind::kFloat);
  f->f = 0.1;
  add("float", f);
  add("str", doc.make_str("h\xc3\xa9llo"));
  Value* bytes = doc.make(Kind::kBytes);
  bytes->s = std::string("\x00\x01\xff", 3);
  add("bytes", bytes);
  Value* set = doc.make(Kind::kSet);
  set->items = {doc.make_int(1), doc.make_int(2)};
  add("set", set);
  Value* tup = doc.make(Kind::kTuple);
  tup->items = {doc.make_int(1), doc.make_str("a"), doc.make_int(3), doc.make_int(4)};
  add("tuple", tup);
  Value* list = doc.make(Kind::kList);
  list->items = {tup, doc.make(Kind::kNone)};
  add("list", list);
  Value* t = doc.make(Kind::kTensor);
  t->tensor = std::make_shared<TensorRef>();
  t->tensor->dtype = "float32";
  t->tensor->storage_class = "FloatStorage";
  t->tensor->storage_key = "0";
  t->tensor->device = "cpu";
  t->tensor->storage_numel = 12;
  t->tensor->shape = {3, 4};
  t->tensor->stride = {4, 1};
  t->tensor->parameter = true;
  t->tensor->requires_grad = true;
  add("tensor", t);

  auto bytes1 = pickle(*root, {});
  REQUIRE(bytes1.ok());
  auto d = load(*bytes1);
  REQUIRE(d.ok());
  const Value& r = *(*d)->root;
  REQUIRE(r.kind == Kind::kDict);
  CHECK(r.ordered);
  CHECK(r.items.size() == root->items.size());
  CHECK(int_to_string(*r.items[2 * 13 + 1]) == "1267650600228229401496703205376");
  CHECK(r.items[2 * 16 + 1]->s == std::string("\x00\x01\xff", 3));
  const Value& tt = *r.items.back();
  REQUIRE(tt.kind == Kind::kTensor);
  CHECK(tt.tensor->parameter);
  CHECK(tt.tensor->shape == std::vector<int64_t>{3, 4});
  CHECK(repickle(*bytes1) == *bytes1);
}

TEST_CASE("pickle: big and negative ints print as Python does") {
  // LONG1 payloads (little-endian two's complement).
  std::string neg70 = std::string("\x80\x02\x8a\x09", 4) +
                      std::string("\x00\x00\x00\x00\x00\x00\x00\x00\xc0", 9) + ".";
  auto d = load(neg70);
  REQUIRE(d.ok());
  CHECK(int_to_string(*(*d)->root) == "-1180591620717411303424");  // -(2**70)
  auto m1 = load(std::string("\x80\x02\x8a\x01\xff.", 6));
  REQUIRE(m1.ok());
  CHECK((*m1)->root->i == -1);
}

TEST_CASE("pickle: os.system via GLOBAL + REDUCE is refused by name, or reported, never called") {
  const char raw[] =
      "\x80\x02"
      "cos\nsystem\n"
      "X\x05\x00\x00\x00"
      "touch\x85R.";
  const std::string evil(raw, sizeof raw - 1);
  auto strict = load(evil, true);
  REQUIRE_FALSE(strict.ok());
  CHECK(strict.status().message().find("os.system") != std::string::npos);
  auto lenient = load(evil, false);
  REQUIRE(lenient.ok());
  CHECK((*lenient)->unsafe_globals == std::vector<std::string>{"os.system"});
  CHECK((*lenient)->root->kind == Kind::kObject);
  // And it cannot be written back out.
  CHECK_FALSE(pickle(*(*lenient)->root, {}).ok());
}

TEST_CASE("pickle: builtins.eval via STACK_GLOBAL (protocol 4) is refused by name") {
  const std::string evil = std::string(
      "\x80\x04\x8c\x08"
      "builtins\x8c\x04"
      "eval\x93\x8c\x03"
      "1+1\x85R.",
      27);
  auto strict = load(evil, true);
  REQUIRE_FALSE(strict.ok());
  CHECK(strict.status().message().find("builtins.eval") != std::string::npos);
}

TEST_CASE("pickle: truncations and garbage are errors") {
  Document doc;
  Value* l = doc.make(Kind::kList);
  l->items = {doc.make_str("abc"), doc.make_int(1 << 20), doc.make(Kind::kNone)};
  auto bytes = pickle(*l, {});
  REQUIRE(bytes.ok());
  for (size_t n = 0; n < bytes->size(); ++n) CHECK_FALSE(load(bytes->substr(0, n)).ok());
  CHECK_FALSE(load("\xff\xff\xff").ok());
  CHECK_FALSE(
      load(std::string("\x80\x02X\xff\xff\xff\x7f", 7)).ok());  // string longer than the data
  CHECK_FALSE(load(std::string("\x80\x02h\x05.", 5)).ok());     // memo miss
  CHECK_FALSE(load(std::string("\x80\x02"
                               "a.",
                               4))
                  .ok());  // stack underflow
}

TEST_CASE("pickle: self-containing values and exponential sharing are refused, not walked") {
  // EMPTY_LIST BINPUT 0 BINGET 0 APPEND STOP
  auto cyc =
      load(std::string("\x80\x02]q\x00h\x00"
                       "a.",
                       9));
  REQUIRE_FALSE(cyc.ok());
  CHECK(cyc.status().message().find("contains itself") != std::string::npos);
  // t0 = None; t(k+1) = (tk, tk) sixty times: 2**61 nodes when expanded, from ~500 bytes.
  std::string p("\x80\x02N", 3);
  for (int k = 0; k < 60; ++k)
    p += std::string(
        "q\x00"
        "0"
        "h\x00h\x00"
        "\x86",
        8);
  p += ".";
  auto big = load(p);
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().message().find("too many values") != std::string::npos);
}
