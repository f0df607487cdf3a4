// Storage helpers that work on any driver: a view of a key prefix, and object copies.
#include <unistd.h>

#include <cstdlib>

#include "ckpt/io.h"
#include "ckpt/storage.h"

namespace fs = std::filesystem;

namespace ckpt {
namespace {

class SubStorage : public Storage {
 public:
  SubStorage(Storage& base, std::string prefix) : base_(base), prefix_(std::move(prefix)) {
    loc_ = base.location();
    std::string rel = prefix_;
    if (!rel.empty() && rel.back() == '/') rel.pop_back();
    loc_.uri = join_key(loc_.uri, rel);
    loc_.path = loc_.is_local() ? (fs::path(loc_.path) / rel).string() : join_key(loc_.path, rel);
  }

  const Location& location() const override { return loc_; }

  Result<std::vector<ObjectInfo>> list() override {
    CKPT_ASSIGN_OR_RETURN(auto all, base_.list());
    std::vector<ObjectInfo> out;
    for (auto& o : all) {
      if (o.key.compare(0, prefix_.size(), prefix_) == 0 && o.key.size() > prefix_.size()) {
        out.push_back({o.key.substr(prefix_.size()), o.size});
      }
    }
    return out;
  }
  Result<std::optional<ObjectInfo>> stat(const std::string& key) override {
    CKPT_ASSIGN_OR_RETURN(auto info, base_.stat(prefix_ + key));
    if (info) info->key = key;
    return info;
  }
  Status put(const std::string& key, ByteSource& src, const ProgressFn& progress) override {
    CKPT_RETURN_IF_ERROR(check_relative_key(key));
    return base_.put(prefix_ + key, src, progress);
  }
  Status get_to_file(const std::string& key, const fs::path& dst, const ProgressFn& progress) override {
    return base_.get_to_file(prefix_ + key, dst, progress);
  }
  Status get_to_sink(const std::string& key, ByteSink& sink, const ProgressFn& progress) override {
    return base_.get_to_sink(prefix_ + key, sink, progress);
  }
  Result<std::unique_ptr<RandomAccessFile>> open(const std::string& key) override {
    return base_.open(prefix_ + key);
  }
  Status remove(const std::string& key) override { return base_.remove(prefix_ + key); }
  Status copy_from(Storage& from, const std::string& from_key, const std::string& key) override {
    CKPT_RETURN_IF_ERROR(check_relative_key(key));
    if (auto* sub = dynamic_cast<SubStorage*>(&from)) {
      return base_.copy_from(sub->base_, sub->prefix_ + from_key, prefix_ + key);
    }
    return base_.copy_from(from, from_key, prefix_ + key);
  }
  Status flush() override { return base_.flush(); }

 private:
  Storage& base_;
  std::string prefix_;
  Location loc_;
};

}  // namespace

std::unique_ptr<Storage> sub_storage(Storage& base, const std::string& prefix) {
  return std::make_unique<SubStorage>(base, prefix);
}

Status copy_object(Storage& from, const std::string& from_key, Storage& to, const std::string& key) {
  Status st = to.copy_from(from, from_key, key);
  if (st.code() != Errc::kUnsupported) return st;
  // Different kinds of storage: through a temporary file, so memory stays bounded and each
  // driver's parallel transfers apply.
  const char* tmpdir = std::getenv("TMPDIR");
  std::string templ = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/ckpt-copy-XXXXXX";
  int fd = ::mkstemp(templ.data());
  if (fd < 0) return errno_status(errno, "cannot create temporary file", templ);
  ::close(fd);
  st = from.get_to_file(from_key, templ, {});
  if (st.ok()) {
    auto src = FdSource::open_file(templ);
    st = src.ok() ? to.put(key, **src, {}) : src.status();
  }
  ::unlink(templ.c_str());
  return st;
}

}  // namespace ckpt
