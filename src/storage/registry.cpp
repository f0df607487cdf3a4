#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "ckpt/storage.h"

namespace fs = std::filesystem;

namespace ckpt {

Result<void*> load_plugin_symbol(const std::string& plugin, const char* symbol) {
  std::string file = "ckpt-" + plugin + ".so";
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("CKPT_PLUGIN_DIR"); env && *env) dirs.emplace_back(env);
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(exe.parent_path());
    dirs.push_back(exe.parent_path() / CKPT_PLUGIN_RELDIR);
  }
  std::string tried;
  for (const auto& dir : dirs) {
    auto path = dir / file;
    if (!fs::exists(path, ec)) {
      tried += " " + path.lexically_normal().string();
      continue;
    }
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      return Status(Errc::kUnsupported, "cannot load plugin '" + path.string() + "': " + ::dlerror());
    }
    void* sym = ::dlsym(handle, symbol);
    if (!sym) {
      return Status(Errc::kUnsupported,
                    "plugin '" + path.string() + "' has no symbol '" + symbol + "'");
    }
    return sym;
  }
  return Status(Errc::kUnsupported,
                "plugin '" + file + "' is not installed (looked in:" + tried + ")");
}

Result<std::unique_ptr<Storage>> open_storage(const Location& loc, const StorageOptions& opts) {
  if (loc.is_local()) return make_local_storage(loc, opts);
  // One plugin per remote scheme; abfs and abfss share the Azure driver.
  std::string plugin = loc.scheme == "abfss" ? "abfs" : loc.scheme;
  CKPT_ASSIGN_OR_RETURN(void* sym, load_plugin_symbol(plugin, "ckpt_open_storage"));
  auto open = reinterpret_cast<OpenStorageFn>(sym);
  Status st;
  Storage* storage = open(&loc, &opts, &st);
  if (!storage) {
    return st.ok() ? Status(Errc::kInternal, "plugin failed to open " + loc.uri) : st;
  }
  return std::unique_ptr<Storage>(storage);
}

}  // namespace ckpt
