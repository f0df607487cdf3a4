#include "cli/common.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace ckpt::cli {
namespace {

// A one-line bar on stderr: bytes, rate, ETA; redrawn at most ten times a second.
class TerminalProgress : public Progress {
 public:
  void start(uint64_t total, size_t files) override {
    total_ = total;
    done_ = 0;
    files_ = files;
    begin_ = last_ = std::chrono::steady_clock::now();
  }
  void advance(uint64_t bytes) override {
    done_ += bytes;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    draw(now);
  }
  void finish() override {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  void draw(std::chrono::steady_clock::time_point now) {
    double secs = std::chrono::duration<double>(now - begin_).count();
    double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
    int pct = total_ ? static_cast<int>(100.0 * static_cast<double>(done_) / static_cast<double>(total_)) : 0;
    int width = 24, fill = pct * width / 100;
    std::string bar(static_cast<size_t>(fill), '=');
    bar.resize(static_cast<size_t>(width), ' ');
    std::string eta = "--";
    if (rate > 0 && total_ > done_) eta = std::to_string(static_cast<int>((total_ - done_) / rate)) + "s";
    std::fprintf(stderr, "\r\033[K[%s] %3d%% %s / %s  %s/s  ETA %s  (%zu files)", bar.c_str(), pct,
                 format_bytes(done_).c_str(), format_bytes(total_).c_str(),
                 format_bytes(static_cast<uint64_t>(rate)).c_str(), eta.c_str(), files_);
    drawn_ = true;
  }

  uint64_t total_ = 0, done_ = 0;
  size_t files_ = 0;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point begin_, last_;
};

}  // namespace

int exit_code(Errc code) {
  switch (code) {
    case Errc::kOk: return 0;
    case Errc::kInvalidArgument: return 2;
    case Errc::kNotConfigured: return 3;
    case Errc::kNoCheckpoint: return 4;
    case Errc::kCorrupt: return 5;
    case Errc::kPending: return 6;
    default: return 1;
  }
}

int finish(const Status& status, const CliContext& ctx) {
  if (status.ok()) return 0;
  // "Not configured" and "nothing there" are answers, not failures: say them at info level.
  if (status.code() == Errc::kNotConfigured || status.code() == Errc::kNoCheckpoint) {
    spdlog::info("{}", status.message());
  } else {
    spdlog::error("{}", status.message());
  }
  return exit_code(status.code());
}

void add_common_options(CLI::App& cmd, CliContext& ctx, bool with_json) {
  cmd.add_option("-c,--checkpoint-path,--dest", ctx.dest,
                 "Where this attempt's checkpoint goes (path, file:// or s3:// URI)")
      ->envname("CKPT_DEST");
  cmd.add_option("-p,--prev-checkpoint,--src", ctx.sources,
                 "The previous attempt's checkpoint; \"\" or {{.prevCheckpointPrefix}} mean none. "
                 "Repeat it (or separate with commas) for fallbacks: the first complete one is used")
      ->envname("CKPT_SRC")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd.add_option("--step", ctx.step,
                 "Saves: write step N (or 'next') under <dest>/.ckpt/steps/; reads: use step N "
                 "instead of the newest complete one")
      ->envname("CKPT_STEP")
      ->check([](const std::string& text) {
        auto parsed = StepChoice::parse(text);
        return parsed.ok() ? std::string() : parsed.status().message();
      });
  auto* q = cmd.add_flag("-q,--quiet", ctx.quiet, "Only errors on stderr")->envname("CKPT_QUIET");
  cmd.add_flag("-v,--verbose", ctx.verbose, "More detail on stderr (-vv for tracing)")
      ->envname("CKPT_VERBOSE")
      ->excludes(q);
  if (with_json) cmd.add_flag("--json", ctx.json, "Machine-readable output on stdout");
  cmd.add_option("-j,--jobs", ctx.jobs,
                 "Files transferred in parallel (default: cores, at least 4; at least 16 for "
                 "object storage)")
      ->envname("CKPT_JOBS")
      ->check(CLI::Range(1u, 256u));
  cmd.add_option("--endpoint", ctx.endpoint, "S3-compatible endpoint URL")->envname("CKPT_ENDPOINT");
  cmd.add_option("--region", ctx.region, "Object store region")->envname("CKPT_REGION");
  cmd.add_option("--part-size", ctx.part_size, "Multipart part size in bytes (default 8 MiB)")
      ->envname("CKPT_PART_SIZE")
      ->check(CLI::Range(uint64_t{5} << 20, uint64_t{5} << 30));
  cmd.add_option("--parts-in-flight", ctx.parts_in_flight,
                 "Parts of one object transferred in parallel (default 8)")
      ->envname("CKPT_PARTS_IN_FLIGHT")
      ->check(CLI::Range(1u, 64u));
}

void add_write_options(CLI::App& cmd, CliContext& ctx) {
  cmd.add_flag("--fsync", ctx.fsync, "Make the data durable (fsync) before reporting success")
      ->envname("CKPT_FSYNC");
  cmd.add_flag("--no-manifest", ctx.no_manifest,
               "Write exactly flytekit's layout, without ckpt's manifest (restores are unverified)")
      ->envname("CKPT_NO_MANIFEST");
  cmd.add_option("--keep", ctx.keep,
                 "With steps: after a step commits, delete all but the newest K complete steps "
                 "(default 2; 0 keeps all)")
      ->envname("CKPT_KEEP");
}

CheckpointConfig make_config(const CliContext& ctx) {
  CheckpointConfig config;
  config.dest = ctx.dest;
  config.sources = ctx.sources;
  config.step = StepChoice::parse(ctx.step).value();  // checked when parsed
  config.keep = ctx.keep;
  config.jobs = ctx.jobs;
  config.write_manifest = !ctx.no_manifest;
  config.storage.endpoint = ctx.endpoint;
  config.storage.region = ctx.region;
  config.storage.part_size = ctx.part_size;
  config.storage.parts_in_flight = ctx.parts_in_flight;
  config.storage.durable = ctx.fsync;
  static TerminalProgress bar;
  if (!ctx.quiet && ::isatty(STDERR_FILENO)) config.progress = &bar;
  return config;
}

void setup_logging(const CliContext& ctx) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  const char* no_color = std::getenv("NO_COLOR");
  if (no_color && *no_color) sink->set_color_mode(spdlog::color_mode::never);
  auto logger = std::make_shared<spdlog::logger>("ckpt", sink);
  logger->set_pattern("ckpt: %^%l%$: %v");
  spdlog::level::level_enum level = spdlog::level::info;
  if (ctx.quiet) level = spdlog::level::err;
  if (ctx.verbose == 1) level = spdlog::level::debug;
  if (ctx.verbose >= 2) level = spdlog::level::trace;
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

void print_json(const nlohmann::json& doc) { std::cout << doc.dump(2) << std::endl; }


}  // namespace ckpt::cli
