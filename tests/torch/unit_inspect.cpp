#include <doctest/doctest.h>

#include "ckpt/io.h"
#include "ckpt/torch/inspect.h"
#include "ckpt/torch/pickle.h"
#include "ckpt/torch/torch_file.h"
#include "ckpt/torch/zip.h"
#include "mem_file.h"

using namespace ckpt;
using namespace ckpt::torch;

namespace {

// A torch.save-shaped file: {"module_state_dict": {w0, w1, w2 (8 MiB each)}, "lr": 0.5}.
std::string synthetic_checkpoint() {
  Document doc;
  Value* sd = doc.make(Kind::kDict);
  sd->ordered = true;
  for (int k = 0; k < 3; ++k) {
    Value* t = doc.make(Kind::kTensor);
    t->tensor = std::make_shared<TensorRef>();
    t->tensor->dtype = "float32";
    t->tensor->storage_class = "FloatStorage";
    t->tensor->storage_key = std::to_string(k);
    t->tensor->device = "cpu";
    t->tensor->storage_numel = 2u << 20;
    t->tensor->shape = {2048, 1024};
    t->tensor->stride = {1024, 1};
    sd->items.push_back(doc.make_str("w" + std::to_string(k)));
    sd->items.push_back(t);
  }
  Value* root = doc.make(Kind::kDict);
  root->items = {doc.make_str("module_state_dict"), sd, doc.make_str("lr"), doc.make(Kind::kFloat)};
  root->items.back()->f = 0.5;
  StringSink sink;
  ZipWriter w(sink);
  REQUIRE(w.add("ck/data.pkl", pickle(*root, {}).value()).ok());
  for (int k = 0; k < 3; ++k) REQUIRE(w.add("ck/data/" + std::to_string(k), std::string(8u << 20, char(k))).ok());
  REQUIRE(w.add("ck/version", "3\n").ok());
  REQUIRE(w.finish().ok());
  return sink.data();
}

}  // namespace

TEST_CASE("inspect: a remote-style file needs a few small reads, never the tensor bytes") {
  MemFile f(synthetic_checkpoint(), /*mapped=*/false);
  auto s = inspect(f, {});
  REQUIRE(s.ok());
  CHECK((*s)["kind"] == "pytorch_checkpoint");
  CHECK((*s)["tensors"].size() == 3);
  CHECK((*s)["tensors"][1]["name"] == "module_state_dict.w1");
  CHECK((*s)["parameter_count"] == 3u * 2048 * 1024);
  CHECK((*s)["hyperparameters"]["lr"] == 0.5);
  CHECK(f.reads <= 5);
  CHECK(f.fetched < 300 * 1024);  // of a 24 MiB file
  CHECK(render_text(*s).find("module_state_dict.w2") != std::string::npos);
  CHECK(render_html(*s).find("<td>module_state_dict.w0</td>") != std::string::npos);
}

TEST_CASE("inspect: tensors reaching past their storage are reported as corrupt") {
  std::string file = synthetic_checkpoint();
  // Shrink the declared storage numel in the pickle: 2097152 elements -> a tiny number.
  Document doc;
  MemFile probe(file, true);
  auto tf = TorchFile::open(probe, true);
  REQUIRE(tf.ok());
  Value* root = (*tf)->doc().root;
  root->items[1]->items[1]->tensor->storage_numel = 10;  // shape 2048x1024 no longer fits
  StringSink sink;
  REQUIRE(write_torch_file(*root, {tf->get()}, sink, {}).ok());
  MemFile bad(sink.data(), true);
  auto s = inspect(bad, {});
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Errc::kCorrupt);
  CHECK(s.status().message().find("module_state_dict.w0") != std::string::npos);
}

TEST_CASE("for_each_tensor: raw bytes, offsets and layout for statistics consumers") {
  std::string file = synthetic_checkpoint();
  MemFile f(file, true);
  auto tf = TorchFile::open(f, true);
  REQUIRE(tf.ok());
  int seen = 0;
  REQUIRE(for_each_tensor(
              **tf,
              [&](const TensorLocation& loc) -> Status {
                CHECK(loc.data != nullptr);
                CHECK(loc.storage_bytes == (8u << 20));
                CHECK(loc.storage_offset % 64 == 0);
                CHECK(static_cast<uint8_t>(file[loc.storage_offset]) == seen);
                CHECK(loc.tensor->shape == std::vector<int64_t>{2048, 1024});
                ++seen;
                return {};
              },
              true)
              .ok());
  CHECK(seen == 3);
}

TEST_CASE("looks_like_torch_file: zip and legacy magic only") {
  MemFile zip(synthetic_checkpoint(), true);
  CHECK(looks_like_torch_file(zip));
  MemFile legacy(std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19rest", 18), true);
  CHECK(looks_like_torch_file(legacy));
  auto r = inspect(legacy, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("legacy") != std::string::npos);
  MemFile text(std::string("hello world"), true);
  CHECK_FALSE(looks_like_torch_file(text));
}
