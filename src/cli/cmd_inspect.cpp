// inspect TARGET: a checkpoint location (its files, sizes, completeness) or one file/object
// (a torch checkpoint is summarised without reading its tensor bytes).
#include <fstream>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#ifdef CKPT_WITH_TORCH
#include "ckpt/torch/inspect.h"
#endif

namespace ckpt::cli {
namespace {

struct InspectFlags {
  std::string target;
  std::string html;
  bool stats = false;
};

// The parent location and the last path component, so one object can be opened by key.
std::pair<Location, std::string> split_last(const Location& loc) {
  Location parent = loc;
  std::string& path = parent.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  path = slash == std::string::npos ? (loc.is_local() ? "." : "") : path.substr(0, slash ? slash : 1);
  parent.uri = loc.is_local() ? path : loc.scheme + "://" + loc.bucket + (path.empty() ? "" : "/" + path);
  return {parent, name};
}

Result<nlohmann::json> inspect_object(Storage& storage, const std::string& key,
                                      const InspectFlags& flags) {
  CKPT_ASSIGN_OR_RETURN(auto file, storage.open(key));
  nlohmann::json doc = {{"uri", storage.uri_of(key)}, {"size", file->size()}};
#ifdef CKPT_WITH_TORCH
  if (torch::looks_like_torch_file(*file)) {
    torch::InspectOptions opts;
    opts.stats = flags.stats;
    CKPT_ASSIGN_OR_RETURN(auto summary, torch::inspect(*file, opts));
    summary["uri"] = storage.uri_of(key);
    spdlog::debug("inspect read {} bytes of {}", file->bytes_fetched(), storage.uri_of(key));
    return summary;
  }
#endif
  doc["format"] = "unknown";
  return doc;
}

std::string object_text(const nlohmann::json& doc) {
#ifdef CKPT_WITH_TORCH
  if (doc.contains("tensors")) return torch::render_text(doc);
#endif
  return doc.value("uri", "") + ": " + format_bytes(doc.value("size", uint64_t{0})) + ", format " +
         doc.value("format", "unknown") + "\n";
}

int inspect_location(Storage& storage, const InspectFlags& flags, const CliContext& ctx) {
  auto view = load_view(storage);
  if (!view.ok()) return finish(view.status(), ctx);
  nlohmann::json doc;
  doc["uri"] = view->uri;
  doc["state"] = view->files.empty() && view->complete()
                     ? "missing"
                     : !view->complete() ? "incomplete" : view->has_manifest ? "complete" : "unverified";
  doc["manifests"] = view->manifests;
  doc["bytes"] = view->total_bytes();
  doc["files"] = nlohmann::json::array();
  for (const auto& f : view->files) {
    nlohmann::json entry = {{"key", f.key}, {"size", f.size}};
    if (f.expected) entry["hash"] = f.expected->hash;
    auto obj = inspect_object(storage, f.stored.front(), flags);
    if (!obj.ok()) {
      // A file that looks like a torch checkpoint but cannot be read as one (or cannot be
      // opened): said, not silently skipped.
      entry["torch_error"] = obj.status().message();
    } else if (obj->contains("tensors")) {
      entry["torch"] = *obj;
    }
    doc["files"].push_back(entry);
  }
  doc["missing"] = view->missing;
  doc["wrong_size"] = view->mismatched;
  doc["unrecorded"] = view->unrecorded;
  if (ctx.json) {
    print_json(doc);
  } else {
    std::cout << "checkpoint: " << view->uri << "\nstate: " << doc["state"].get<std::string>();
    if (view->has_manifest) std::cout << " (" << view->manifests << " manifest(s))";
    std::cout << "\nfiles: " << view->files.size() << ", " << format_bytes(view->total_bytes()) << "\n";
    for (const auto& f : doc["files"]) {
      std::printf("  %12s  %s\n", format_bytes(f["size"].get<uint64_t>()).c_str(),
                  f["key"].get<std::string>().c_str());
    }
    std::cout.flush();
    for (const auto& k : view->missing) std::cout << "  missing: " << k << "\n";
    for (const auto& k : view->mismatched) std::cout << "  wrong size: " << k << "\n";
    for (const auto& k : view->unrecorded) std::cout << "  not in any manifest: " << k << "\n";
    for (const auto& f : doc["files"]) {
      if (f.contains("torch")) {
        std::cout << "\n" << f["key"].get<std::string>() << ":\n" << object_text(f["torch"]);
      } else if (f.contains("torch_error")) {
        std::cout << "\n" << f["key"].get<std::string>()
                  << ": not inspected: " << f["torch_error"].get<std::string>() << "\n";
      }
    }
  }
  if (view->files.empty() && view->complete()) return exit_code(Errc::kNoCheckpoint);
  return view->complete() ? 0 : exit_code(Errc::kCorrupt);
}

int run_inspect(const InspectFlags& flags, const CliContext& ctx) {
  auto loc = parse_location(flags.target);
  if (!loc.ok()) return finish(loc.status(), ctx);
  auto config = make_config(ctx);
  // A single file or object is inspected as such; anything else as a checkpoint prefix.
  auto [parent_loc, name] = split_last(*loc);
  if (!name.empty()) {
    auto parent = open_storage(parent_loc, config.storage);
    if (!parent.ok()) return finish(parent.status(), ctx);
    auto info = (*parent)->stat(name);
    if (!info.ok()) return finish(info.status(), ctx);
    if (info->has_value()) {
      auto doc = inspect_object(**parent, name, flags);
      if (!doc.ok()) return finish(doc.status(), ctx);
      if (!flags.html.empty()) {
#ifdef CKPT_WITH_TORCH
        if (!doc->contains("tensors")) {
          return finish(Status(Errc::kInvalidArgument,
                               "--html: '" + flags.target + "' is not a torch checkpoint file"),
                        ctx);
        }
        std::ofstream out(flags.html);
        out << torch::render_html(*doc);
        if (!out) return finish(Status(Errc::kIo, "cannot write '" + flags.html + "'"), ctx);
#else
        return finish(Status(Errc::kUnsupported, "--html needs torch support"), ctx);
#endif
      }
      if (ctx.json) {
        print_json(*doc);
      } else {
        std::cout << object_text(*doc);
      }
      return 0;
    }
  }
  if (!flags.html.empty()) {
    return finish(Status(Errc::kInvalidArgument,
                         "--html reports on one torch file; '" + flags.target +
                             "' is a checkpoint location (name one of its files)"),
                  ctx);
  }
  auto storage = open_storage(*loc, config.storage);
  if (!storage.ok()) return finish(storage.status(), ctx);
  return inspect_location(**storage, flags, ctx);
}

}  // namespace

void add_inspect_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "inspect", "Show what a checkpoint location, a torch checkpoint file or a remote object holds");
  static InspectFlags flags;
  cmd->add_option("TARGET", flags.target, "A checkpoint location, or a file/object (e.g. model.pt)")
      ->required();
  cmd->add_option("--html", flags.html, "Also write a self-contained HTML report to FILE");
  cmd->add_flag("--stats", flags.stats, "Per-tensor min/max/mean/std and NaN/Inf counts (loads libtorch)");
  add_common_options(*cmd, ctx, true);
  cmd->callback([&ctx] { ctx.action = [&ctx] { return run_inspect(flags, ctx); }; });
}

}  // namespace ckpt::cli
