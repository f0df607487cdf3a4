// `ckpt run`: restore, run CMD, save periodically and at the end, forward signals, reap.
//
// One thread, one loop: poll() on a signalfd (every signal run cares about is blocked and read
// from it, so nothing happens in a signal handler) and on the pipe of the save in progress,
// with a timeout that is the next timer (periodic save, kill-after, queue poll, deadline).
// Snapshots run in a short-lived child process: async::save blocks for as long as the copy
// takes, and in the meantime the loop must keep forwarding signals, reaping children and
// watching the grace period.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <system_error>

#include <nlohmann/json.hpp>
#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include "ckpt/async.h"
#include "ckpt/io.h"
#include "ckpt/run.h"
#include "ckpt/uri.h"

extern char** environ;

namespace ckpt {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Json = nlohmann::ordered_json;  // events keep "event" and "time" first

// How often the queue is looked at for finished uploads, and the longest the loop blocks in
// wait_idle before it looks at signals again.
constexpr milliseconds kPollInterval{250};

// ---------------------------------------------------------------------------------------
// Small formatting helpers.

std::string dump(const Json& j) {
  // File names need not be UTF-8; never let one throw.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  ::gmtime_r(&secs, &utc);
  char date[32], out[48];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(out, sizeof out, "%s.%03dZ", date, static_cast<int>(ms % 1000));
  return out;
}

std::string human_duration(milliseconds d) {
  char buf[32];
  if (d.count() % 1000 == 0) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(d.count() / 1000));
  } else if (d.count() > 1000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(d.count()));
  }
  return buf;
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string command_text(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`*?;&|<>()") == std::string::npos;
    out += plain ? a : "'" + a + "'";
  }
  return out;
}

// "exited with code 3" / "killed by SIGKILL", and the shell's number for it.
int status_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
std::string status_text(int status) {
  return WIFEXITED(status) ? "exited with code " + std::to_string(WEXITSTATUS(status))
                           : "killed by " + signal_name(WTERMSIG(status));
}

std::string files_text(uint64_t n, uint64_t bytes) {
  return std::to_string(n) + (n == 1 ? " file, " : " files, ") + format_bytes(bytes);
}

bool has_files(const fs::path& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Events: one line each on stderr, text through the ckpt logger or, with --json, one JSON
// object per line. In JSON mode the logger's own lines (the engine's warnings, the CLI's final
// error) become {"event":"log",...} objects too, so every line of stderr parses.

constexpr char kEventMark = '\x1e';  // starts a pre-rendered JSON event, never a log message

class JsonLines : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    std::string line;
    if (!text.empty() && text.front() == kEventMark) {
      line = std::string(text.substr(1));
    } else {
      auto level = spdlog::level::to_string_view(msg.level);
      line = dump(Json{{"event", "log"},
                       {"time", iso_time(msg.time)},
                       {"level", std::string(level.data(), level.size())},
                       {"message", std::string(text)}});
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonLines>(); }
};

class Events {
 public:
  explicit Events(bool json) : json_(json) {
    if (json_) spdlog::default_logger()->set_formatter(std::make_unique<JsonLines>());
  }
  void emit(spdlog::level::level_enum level, const char* event, const Json& fields,
            const std::string& text) const {
    auto logger = spdlog::default_logger();
    if (!logger->should_log(level)) return;
    if (!json_) {
      logger->log(level, "{}", text);
      return;
    }
    Json doc{{"event", event}, {"time", iso_time(std::chrono::system_clock::now())}};
    for (const auto& [k, v] : fields.items()) doc[k] = v;
    logger->log(level, "{}{}", kEventMark, dump(doc));
  }
  void info(const char* event, const Json& fields, const std::string& text) const {
    emit(spdlog::level::info, event, fields, text);
  }
  void warn(const char* event, const Json& fields, const std::string& text) const {
    emit(spdlog::level::warn, event, fields, text);
  }
  void error(const char* event, const Json& fields, const std::string& text) const {
    emit(spdlog::level::err, event, fields, text);
  }

 private:
  bool json_;
};

Json job_fields(const async::Job& job) {
  Json j{{"job", job.id}};
  if (job.step) j["step"] = *job.step;
  if (!job.uri.empty()) j["uri"] = job.uri;
  return j;
}

// ---------------------------------------------------------------------------------------
// Signals. Everything run reacts to is blocked and read from a signalfd. A signal that run's
// parent set to "ignore" (nohup, a shell's background job) stays ignored, for run and CMD
// alike, except SIGTERM and SIGCHLD, which run needs. CMD gets back the mask and dispositions
// run started with, so running under run looks like running directly.

class Signals {
 public:
  Status install() {
    sigset_t want;
    sigemptyset(&want);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGPIPE}) {
      struct sigaction old {};
      ::sigaction(sig, nullptr, &old);
      original_[sig] = old;
      if (sig == SIGPIPE) continue;  // only recorded, for the child (plugins may ignore it)
      bool ignored = old.sa_handler == SIG_IGN;
      if (ignored && sig != SIGTERM && sig != SIGCHLD) continue;
      sigaddset(&want, sig);
    }
    if (::sigprocmask(SIG_BLOCK, &want, &mask_) != 0) return errno_status(errno, "sigprocmask", "");
    // An ignored signal is discarded before it is queued, blocked or not; and an ignored
    // SIGCHLD would make the kernel reap CMD behind our back.
    for (int sig : {SIGTERM, SIGCHLD}) {
      if (original_[sig].sa_handler == SIG_IGN) {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(sig, &dfl, nullptr);
      }
    }
    fd_ = ::signalfd(-1, &want, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd_ < 0) return errno_status(errno, "signalfd", "");
    // A reader of our stderr that went away (`ckpt run ... 2>&1 | head`) must not kill the
    // supervisor mid-job: writes fail with EPIPE instead. CMD gets the original back.
    ::signal(SIGPIPE, SIG_IGN);
    return {};
  }
  // In a forked child before exec: async-signal-safe calls only.
  void restore_in_child() const {
    for (const auto& [sig, action] : original_) ::sigaction(sig, &action, nullptr);
    ::sigprocmask(SIG_SETMASK, &mask_, nullptr);
  }
  int fd() const { return fd_; }

 private:
  sigset_t mask_{};
  std::map<int, struct sigaction> original_;
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------
// CMD: fork + execvpe. A close-on-exec pipe tells the parent whether exec succeeded (it is
// closed by a successful exec) or the errno it failed with.

struct Spawned {
  pid_t pid = -1;
  int exec_errno = 0;  // non-zero: exec failed, the child exits 127/126
};

Result<Spawned> spawn(const std::vector<std::string>& command, const std::vector<std::string>& env,
                      const Signals& signals) {
  std::vector<char*> argv, envp;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return errno_status(errno, "pipe", "");
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    return errno_status(err, "cannot start the command", command.front());
  }
  if (pid == 0) {
    ::close(report[0]);
    signals.restore_in_child();
    ::execvpe(argv[0], argv.data(), envp.data());
    int err = errno;
    (void)!::write(report[1], &err, sizeof err);
    ::_exit(err == ENOENT ? 127 : 126);  // what a shell answers
  }
  ::close(report[1]);
  Spawned s;
  s.pid = pid;
  ssize_t n;
  do {
    n = ::read(report[0], &s.exec_errno, sizeof s.exec_errno);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof s.exec_errno)) s.exec_errno = 0;
  ::close(report[0]);
  return s;
}

// ---------------------------------------------------------------------------------------
// One async::save at a time, in a child process that reports the job as one JSON line on a
// pipe. The result is taken from the line, not from EOF: the uploader that async::save
// starts may inherit the pipe and keep it open.

struct SaveOutcome {
  Status status;
  async::Job job;
  milliseconds took{0};
};

class SaveProcess {
 public:
  Status start(const async::SaveOptions& options, const fs::path& dir, int close_in_child) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return errno_status(errno, "pipe", "");
    pid_t pid = ::fork();
    if (pid < 0) {
      int err = errno;
      ::close(p[0]);
      ::close(p[1]);
      return errno_status(err, "cannot fork the save process", "");
    }
    if (pid == 0) {
      ::close(p[0]);
      if (close_in_child >= 0) ::close(close_in_child);
      // Signals stay blocked here (and in the uploader, if async::save keeps the mask): a
      // Ctrl-C to the process group must not kill the save that the grace period is for.
      std::string line;
      try {
        auto t0 = Clock::now();
        auto r = async::save(options, dir);
        auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
        Json msg;
        if (r.ok()) {
          msg = {{"ok", true},   {"ms", took},         {"id", r->id},
                 {"state", r->state}, {"fingerprint", r->fingerprint}, {"files", r->files},
                 {"bytes", r->bytes}, {"reflinked", r->reflinked}};
        } else {
          msg = {{"ok", false}, {"code", static_cast<int>(r.status().code())},
                 {"message", r.status().message()}};
        }
        line = dump(msg);
      } catch (const std::exception& e) {
        line = dump(Json{{"ok", false}, {"code", static_cast<int>(Errc::kInternal)},
                         {"message", std::string("save failed: ") + e.what()}});
      } catch (...) {
        line = R"({"ok":false,"code":13,"message":"save failed: unknown exception"})";
      }
      line += '\n';
      for (size_t off = 0; off < line.size();) {
        ssize_t n = ::write(p[1], line.data() + off, line.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::_exit(0);  // never return into the supervisor's code
    }
    ::close(p[1]);
    ::fcntl(p[0], F_SETFL, O_NONBLOCK);
    pid_ = pid;
    fd_ = p[0];
    buf_.clear();
    exit_status_.reset();
    running_ = true;
    return {};
  }

  bool running() const { return running_; }
  int fd() const { return fd_; }
  pid_t pid() const { return pid_; }
  void exited(int status) {
    exit_status_ = status;
    pid_ = -1;
  }

  // The outcome once it is complete, exactly once per save.
  std::optional<SaveOutcome> collect() {
    if (!running_) return std::nullopt;
    bool eof = false;
    char chunk[4096];
    for (;;) {
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n > 0) {
        buf_.append(chunk, static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        eof = n == 0;
        break;
      }
    }
    auto nl = buf_.find('\n');
    if (nl == std::string::npos && !eof && !exit_status_) return std::nullopt;
    ::close(fd_);
    fd_ = -1;
    running_ = false;
    SaveOutcome out;
    if (nl == std::string::npos) {
      out.status = Status(Errc::kInternal, "the save process " +
                                               (exit_status_ ? status_text(*exit_status_) : "died") +
                                               " before reporting");
      return out;
    }
    auto msg = Json::parse(buf_.substr(0, nl), nullptr, false);
    if (msg.is_discarded() || !msg.is_object()) {
      out.status = Status(Errc::kInternal, "the save process sent an unreadable report");
    } else if (!msg.value("ok", false)) {
      out.status = Status(static_cast<Errc>(msg.value("code", static_cast<int>(Errc::kInternal))),
                          msg.value("message", std::string("save failed")));
    } else {
      out.took = milliseconds(msg.value("ms", 0));
      out.job.id = msg.value("id", "");
      out.job.state = msg.value("state", "");
      out.job.fingerprint = msg.value("fingerprint", "");
      out.job.files = msg.value("files", uint64_t{0});
      out.job.bytes = msg.value("bytes", uint64_t{0});
      out.job.reflinked = msg.value("reflinked", false);
    }
    return out;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool running_ = false;
  std::string buf_;
  std::optional<int> exit_status_;
};

// ---------------------------------------------------------------------------------------

class Supervisor {
 public:
  Supervisor(const RunOptions& options, CheckpointConfig config)
      : opt_(options), config_(std::move(config)), events_(options.json) {}

  Result<int> run() {
    CKPT_RETURN_IF_ERROR(prepare());
    CKPT_RETURN_IF_ERROR(restore());
    if (int sig = stop_signal_pending()) {
      events_.warn("exit", {{"signal", signal_name(sig)}, {"code", 128 + sig}},
                   "received " + signal_name(sig) + " before the command started; not starting it");
      return 128 + sig;
    }
    CKPT_RETURN_IF_ERROR(start_command());
    loop();
    reap();
    return conclude();
  }

 private:
  enum class Phase { kRunning, kFinalSave, kWaiting, kDone };

  Status prepare() {
    // First of all: from here on SIGTERM is ours to handle, and blocked signals are
    // inherited by every thread and child started later.
    CKPT_RETURN_IF_ERROR(signals_.install());
    if (opt_.command.empty()) return Status(Errc::kInvalidArgument, "no command to run");
    if (opt_.dir.empty()) return Status(Errc::kInvalidArgument, "--dir is required");
    if (is_unset_location(config_.dest)) {
      return Status(Errc::kInvalidArgument,
                    "ckpt run needs a checkpoint destination: pass --checkpoint-path or set CKPT_DEST");
    }
    if (opt_.every && opt_.every->count() <= 0) {
      return Status(Errc::kInvalidArgument, "--every must be longer than 0");
    }
    kill_after_ = opt_.kill_after ? *opt_.kill_after : opt_.grace * 6 / 10;
    if (kill_after_ > opt_.grace) {
      return Status(Errc::kInvalidArgument, "--kill-after (" + human_duration(kill_after_) +
                                                ") is longer than --grace (" +
                                                human_duration(opt_.grace) + ")");
    }
    CKPT_ASSIGN_OR_RETURN(dest_, async::canonical_dest(config_.dest));
    std::error_code ec;
    dir_ = fs::absolute(opt_.dir, ec).lexically_normal();
    fs::create_directories(dir_, ec);
    if (ec || !fs::is_directory(dir_)) {
      return Status(Errc::kIo, "cannot create directory '" + dir_.string() + "': " +
                                   (ec ? ec.message() : "a file is in the way"));
    }
    // Orphans (CMD's children, the detached uploader) become ours to reap. PID 1 gets them
    // anyway.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) spdlog::debug("PR_SET_CHILD_SUBREAPER: {}", std::strerror(errno));
    if (::getpid() == 1) spdlog::debug("running as PID 1: forwarding signals and reaping orphans");

    save_config_ = config_;
    save_config_.dest = dest_;
    save_config_.sources.clear();
    save_config_.step = StepChoice{StepChoice::kNext, 0};
    save_config_.carry_forward = false;
    save_config_.progress = nullptr;

    // Jobs already finished (an earlier run in this container) are not this run's news.
    auto st = async::state(dest_);
    if (st.ok()) {
      for (const auto& j : st->finished) before_.insert(j.id);
    } else {
      events_.warn("queue", {{"message", st.status().message()}},
                   "cannot read the upload queue of " + dest_ + ": " + st.status().message());
    }
    return {};
  }

  // The destination first (a container restarted within this attempt), then the previous
  // attempts. "Nothing there" and "corrupt" both mean: start fresh, the job must run.
  Status restore() {
    CheckpointConfig rc = config_;
    rc.dest = dest_;
    rc.sources.assign(1, dest_);
    rc.sources.insert(rc.sources.end(), config_.sources.begin(), config_.sources.end());
    rc.carry_forward = opt_.carry_forward;
    rc.step = config_.step.kind == StepChoice::kNumber ? config_.step : StepChoice{};
    rc.progress = nullptr;
    Checkpointer cp(rc);
    auto r = cp.restore(dir_);
    if (!r.ok()) {
      const Status& st = r.status();
      if (st.code() == Errc::kNotConfigured || st.code() == Errc::kNoCheckpoint) {
        events_.info("fresh_start", {{"reason", st.message()}},
                     "fresh start: nothing to restore (" + st.message() + ")");
        return {};
      }
      if (st.code() == Errc::kCorrupt) {
        events_.warn("fresh_start", {{"reason", st.message()}, {"corrupt", true}},
                     "fresh start: " + st.message() +
                         "; no complete checkpoint to fall back to, running the command without one");
        return {};
      }
      return st.with_context("cannot restore into " + dir_.string());
    }
    restored_ = true;
    Json f{{"source", r->source}, {"files", r->files}, {"downloaded", r->downloaded},
           {"skipped", r->skipped}, {"bytes", r->bytes}, {"verified", r->verified}};
    if (r->step) f["step"] = *r->step;
    if (!r->carried_to.empty()) f["carried_to"] = r->carried_to;
    std::string text = "restored " + (r->step ? "step " + std::to_string(*r->step) + " from " : "") +
                       r->source + " into " + dir_.string() + " (" + files_text(r->files, r->bytes) +
                       " transferred" + (r->verified ? "" : "; unverified: no manifest") + ")";
    if (!r->carried_to.empty()) text += "; carried forward to " + r->carried_to;
    events_.info("restored", f, text);
    // What the destination already holds need not be saved again.
    bool dest_has_it = !r->carried_to.empty() || r->source == dest_ || r->source.rfind(dest_ + "/", 0) == 0;
    if (dest_has_it) {
      auto fp = async::fingerprint(dir_);
      if (fp.ok()) last_fingerprint_ = *fp;
    }
    return {};
  }

  int stop_signal_pending() {
    signalfd_siginfo si{};
    int stop = 0;
    while (::read(signals_.fd(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD) reap();
      if ((sig == SIGTERM || sig == SIGINT) && !stop) stop = sig;
      if (!stop && sig != SIGCHLD) spdlog::debug("ignoring {} before the command started", signal_name(sig));
    }
    return stop;
  }

  Status start_command() {
    std::map<std::string, std::string> vars{
        {"CKPT_DIR", dir_.string()},
        {"CKPT_RESTORED", restored_ ? "1" : "0"},
        {"CKPT_DEST", dest_},
        // `ckpt save --async "$CKPT_DIR"` from CMD joins the same queue as a new step.
        {"CKPT_STEP", "next"},
        {"CKPT_KEEP", std::to_string(config_.keep)},
    };
    std::error_code ec;
    if (!opt_.staging.empty()) vars["CKPT_STAGING"] = fs::absolute(opt_.staging, ec).string();
    if (!config_.storage.endpoint.empty()) vars["CKPT_ENDPOINT"] = config_.storage.endpoint;
    if (!config_.storage.region.empty()) vars["CKPT_REGION"] = config_.storage.region;
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
      std::string kv = *e;
      if (!vars.count(kv.substr(0, kv.find('=')))) env.push_back(std::move(kv));
    }
    for (const auto& [k, v] : vars) env.push_back(k + "=" + v);

    CKPT_ASSIGN_OR_RETURN(auto child, spawn(opt_.command, env, signals_));
    cmd_ = child.pid;
    if (child.exec_errno) {
      int status = 0;
      while (::waitpid(cmd_, &status, 0) < 0 && errno == EINTR) {
      }
      exec_failed_code_ = child.exec_errno == ENOENT ? 127 : 126;
      // A shell's wording: a name looked up in PATH that is not there is "not found".
      std::string why = child.exec_errno == ENOENT && opt_.command.front().find('/') == std::string::npos
                            ? "command not found"
                            : std::strerror(child.exec_errno);
      events_.error("exec_failed", {{"command", opt_.command}, {"error", why}, {"code", exec_failed_code_}},
                    "cannot run '" + opt_.command.front() + "': " + why);
      phase_ = Phase::kDone;
      return {};
    }
    cmd_running_ = true;
    phase_ = Phase::kRunning;
    if (opt_.every) next_save_ = Clock::now() + *opt_.every;
    next_poll_ = Clock::now() + kPollInterval;
    Json f{{"pid", cmd_}, {"command", opt_.command}, {"dir", dir_.string()}, {"dest", dest_}};
    if (opt_.every) f["every_ms"] = opt_.every->count();
    events_.info("started", f,
                 "started " + command_text(opt_.command) + " (pid " + std::to_string(cmd_) + "); " +
                     (opt_.every ? "saving " + dir_.string() + " every " + human_duration(*opt_.every)
                                 : "saving " + dir_.string() + " when it ends") +
                     " to " + dest_);
    return {};
  }

  std::optional<Clock::time_point> deadline() const {
    if (!stop_at_) return std::nullopt;
    return *stop_at_ + opt_.grace;
  }

  void loop() {
    while (phase_ != Phase::kDone) {
      auto now = Clock::now();
      auto wake = now + std::chrono::hours(1);
      if (phase_ == Phase::kRunning) {
        if (next_save_ && !stop_at_) wake = std::min(wake, *next_save_);
        if (stop_at_ && !killed_) wake = std::min(wake, *stop_at_ + kill_after_);
      }
      wake = std::min(wake, next_poll_);
      if (auto d = deadline()) wake = std::min(wake, *d);
      // Waiting for uploads blocks in wait_idle below instead.
      bool busy_elsewhere = phase_ == Phase::kWaiting || (phase_ == Phase::kFinalSave && !saver_.running());
      int timeout = busy_elsewhere ? 0
                                   : static_cast<int>(std::max<int64_t>(
                                         0, std::chrono::duration_cast<milliseconds>(wake - now).count() + 1));
      pollfd fds[2] = {{signals_.fd(), POLLIN, 0}, {saver_.fd(), POLLIN, 0}};
      ::poll(fds, saver_.running() ? 2 : 1, timeout);

      handle_signals();
      reap();
      collect_save();
      now = Clock::now();
      if (auto d = deadline(); d && now >= *d && phase_ != Phase::kDone) {
        problem_ = "uploads not committed within the grace period (" + human_duration(opt_.grace) + ")";
        if (cmd_running_) problem_ += "; the command is still running";
        phase_ = Phase::kDone;
        break;
      }
      switch (phase_) {
        case Phase::kRunning:
          if (stop_at_ && !killed_ && now >= *stop_at_ + kill_after_) kill_command();
          if (next_save_ && !stop_at_ && now >= *next_save_ && !saver_.running()) {
            start_save(false);
            next_save_ = now + *opt_.every;
          }
          break;
        case Phase::kFinalSave:
          if (!saver_.running() && !final_started_) {
            final_started_ = true;
            events_.info("final_save", {{"dir", dir_.string()}}, "final save of " + dir_.string());
            start_save(true);
          }
          break;
        case Phase::kWaiting:
          wait_slice();
          break;
        case Phase::kDone:
          break;
      }
      if (Clock::now() >= next_poll_) {
        report_finished_jobs();
        next_poll_ = Clock::now() + kPollInterval;
      }
    }
  }

  void handle_signals() {
    signalfd_siginfo si{};
    while (::read(signals_.fd(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD) {
        reap();
        continue;
      }
      bool stop = sig == SIGTERM || sig == SIGINT;
      bool first_stop = stop && !stop_at_;
      if (first_stop) stop_at_ = Clock::now();
      bool from_terminal = false, forwarded = false;
      if (cmd_running_) {
        // The terminal signals the whole foreground process group: CMD has it already.
        from_terminal = si.ssi_code == SI_KERNEL && ::getpgid(cmd_) == ::getpgrp();
        if (!from_terminal) forwarded = ::kill(cmd_, sig) == 0;
      }
      Json f{{"signal", signal_name(sig)}, {"forwarded", forwarded}, {"from_terminal", from_terminal}};
      std::string text = "received " + signal_name(sig);
      if (forwarded) text += ", forwarded to the command (pid " + std::to_string(cmd_) + ")";
      if (from_terminal) text += " from the terminal (the command got it too)";
      if (first_stop) {
        f["grace_ms"] = opt_.grace.count();
        if (cmd_running_) {
          f["kill_after_ms"] = kill_after_.count();
          text += "; SIGKILL in " + human_duration(kill_after_) + " if it is still running";
        }
        text += "; the checkpoint must be committed within " + human_duration(opt_.grace);
      }
      events_.info("signal", f, text);
    }
  }

  void kill_command() {
    killed_ = true;
    ::kill(cmd_, SIGKILL);
    events_.warn("kill", {{"pid", cmd_}, {"after_ms", kill_after_.count()}},
                 "the command (pid " + std::to_string(cmd_) + ") is still running " +
                     human_duration(kill_after_) + " after the signal: sending SIGKILL");
  }

  // Every child that has exited: CMD, the save process, orphans (the uploader, CMD's
  // abandoned children). Nothing stays a zombie.
  void reap() {
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == cmd_ && cmd_running_) {
        cmd_running_ = false;
        cmd_status_ = status;
        events_.info("exited", {{"pid", pid}, {"code", status_code(status)}, {"how", status_text(status)}},
                     "the command " + status_text(status));
        if (phase_ == Phase::kRunning) phase_ = Phase::kFinalSave;
      } else if (pid == saver_.pid()) {
        saver_.exited(status);
      } else {
        spdlog::debug("reaped orphan pid {} ({})", pid, status_text(status));
      }
    }
  }

  void start_save(bool final) {
    saving_final_ = final;
    if (!has_files(dir_)) {
      // Before the first checkpoint this would repeat every period: only worth a debug line.
      events_.emit(final ? spdlog::level::info : spdlog::level::debug, "skipped",
                   {{"reason", "empty"}, {"final", final}},
                   "nothing to save: " + dir_.string() + " has no files");
      if (final) phase_ = Phase::kWaiting;
      return;
    }
    async::SaveOptions so;
    so.config = save_config_;
    so.staging = opt_.staging;
    so.skip_if_fingerprint = last_fingerprint_;
    // CMD has exited: nothing writes DIR any more, so the final save needs no snapshot copy.
    so.in_place = final;
    Status st = saver_.start(so, dir_, signals_.fd());
    if (!st.ok()) on_save_failed(st);
  }

  void collect_save() {
    auto out = saver_.collect();
    if (!out) return;
    if (!out->status.ok()) {
      on_save_failed(out->status);
      return;
    }
    const auto& job = out->job;
    if (job.state == "skipped") {
      events_.info("skipped", {{"reason", "unchanged"}, {"final", saving_final_}},
                   std::string(saving_final_ ? "final save: " : "") + "skipped, " + dir_.string() +
                       " is unchanged since the last save");
    } else {
      last_fingerprint_ = job.fingerprint;
      events_.info("saving",
                   {{"job", job.id}, {"final", saving_final_}, {"files", job.files}, {"bytes", job.bytes},
                    {"snapshot_ms", out->took.count()}, {"method", job.reflinked ? "reflink" : "copy"}},
                   std::string(saving_final_ ? "final save: " : "") + "saving " +
                       files_text(job.files, job.bytes) + ": snapshot in " +
                       std::to_string(out->took.count()) + " ms (" + (job.reflinked ? "reflink" : "copy") +
                       "), uploading in the background");
    }
    if (saving_final_ && phase_ == Phase::kFinalSave) phase_ = Phase::kWaiting;
  }

  void on_save_failed(const Status& st) {
    if (saving_final_) {
      problem_ = "final save failed: " + st.message();
      events_.error("save_failed", {{"final", true}, {"message", st.message()}}, problem_);
      if (phase_ == Phase::kFinalSave) phase_ = Phase::kWaiting;  // earlier saves may still commit
    } else {
      events_.warn("save_failed", {{"final", false}, {"message", st.message()}},
                   "save failed: " + st.message() + " (trying again at the next period)");
    }
  }

  // Jobs that finished since the last look: committed, failed, superseded.
  void report_finished_jobs() {
    auto st = async::state(dest_);
    if (!st.ok()) {
      spdlog::debug("upload queue: {}", st.status().message());
      return;
    }
    for (const auto& job : st->finished) report_job(job);
  }

  void report_job(const async::Job& job) {
    if (before_.count(job.id) || !reported_.insert(job.id).second) return;
    Json f = job_fields(job);
    if (job.state == "committed") {
      events_.info("committed", f,
                   "committed" + (job.step ? " step " + std::to_string(*job.step) : std::string()) + " to " +
                       job.uri);
    } else if (job.state == "failed") {
      f["message"] = job.message;
      f["error"] = std::string(errc_name(job.error));
      events_.warn("upload_failed", f, "upload failed: " + job.message);
      // Upload these files again at the next period even if they do not change.
      if (job.fingerprint == last_fingerprint_) last_fingerprint_.clear();
    } else {
      events_.emit(spdlog::level::debug, job.state.c_str(), f, "job " + job.id + " " + job.state);
    }
  }

  // wait_idle in slices, so that signals (a SIGTERM sets the deadline) are seen meanwhile.
  void wait_slice() {
    auto until = Clock::now() + kPollInterval;
    if (auto d = deadline()) until = std::min(until, *d);
    auto r = async::wait_idle(dest_, until);
    if (!r.ok()) {
      if (r.status().code() != Errc::kTimeout) {
        problem_ = "cannot wait for the uploads: " + r.status().message();
        phase_ = Phase::kDone;
      }
      return;
    }
    for (const auto& job : r->finished) report_job(job);
    phase_ = Phase::kDone;
    // The newest job that finished during this run decides: it holds the latest state.
    const async::Job* newest = nullptr;
    for (const auto& job : r->finished) {
      if (!before_.count(job.id)) newest = &job;
    }
    auto failures = async::failures(dest_, /*acknowledge=*/true);
    if (newest && newest->state == "failed") {
      if (problem_.empty()) problem_ = "final save failed: " + newest->message;
    } else if (problem_.empty()) {
      Json f;
      if (newest) f = job_fields(*newest);
      events_.info("all_committed", f,
                   newest && newest->state == "committed"
                       ? "all saves committed (newest: " + newest->uri + ")"
                       : std::string("no uploads pending"));
    }
    if (failures.ok()) {
      for (const auto& job : *failures) {
        if (newest && job.id == newest->id) continue;
        if (reported_.count(job.id)) continue;
        events_.warn("earlier_failure", job_fields(job), "an earlier save failed: " + job.message);
      }
    }
  }

  // The one place the job's exit status is decided.
  int conclude() {
    int code;
    if (exec_failed_code_) {
      code = exec_failed_code_;
    } else if (!problem_.empty()) {
      events_.error("error", {{"message", problem_}}, problem_);
      code = kExitSaveFailed;
    } else {
      code = cmd_running_ ? kExitSaveFailed : status_code(cmd_status_);
    }
    events_.info("exit", {{"code", code}}, "exit status " + std::to_string(code));
    return code;
  }

  RunOptions opt_;
  CheckpointConfig config_, save_config_;
  Events events_;
  Signals signals_;
  SaveProcess saver_;
  std::string dest_;
  fs::path dir_;
  milliseconds kill_after_{0};
  Phase phase_ = Phase::kRunning;
  bool restored_ = false;
  pid_t cmd_ = -1;
  bool cmd_running_ = false;
  int cmd_status_ = 0;
  int exec_failed_code_ = 0;
  std::optional<Clock::time_point> stop_at_;  // first SIGTERM/SIGINT
  bool killed_ = false;
  std::optional<Clock::time_point> next_save_;
  Clock::time_point next_poll_{};
  bool saving_final_ = false, final_started_ = false;
  std::string last_fingerprint_;  // of the last save queued or committed by this run
  std::set<std::string> before_;  // jobs finished before this run
  std::set<std::string> reported_;
  std::string problem_;  // why the checkpoint is not safe: exit kExitSaveFailed
};

}  // namespace

Result<int> run_supervised(const RunOptions& options, CheckpointConfig config) {
  Supervisor s(options, std::move(config));
  return s.run();
}

}  // namespace ckpt
