// The per-destination queue of asynchronous saves and its detached uploader (layout in
// include/ckpt/async.h). Every change to the queue happens under its flock; the uploader
// holds uploader.lock for its life, so "no uploader" is a lock anyone can take.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "async/snapshot.h"
#include "checkpoint/layout.h"
#include "ckpt/async.h"
#include "ckpt/hash.h"
#include "ckpt/io.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ckpt::async {
namespace {

constexpr size_t kHistory = 20;

// An exclusive flock on a file, released when destroyed.
class FileLock {
 public:
  FileLock() = default;
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~FileLock() { release(); }
  // wait=false: returns false when another process holds it.
  Result<bool> acquire(const fs::path& path, bool wait) {
    release();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return errno_status(errno, "cannot open", path.string());
    while (::flock(fd_, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      release();
      if (err == EWOULDBLOCK) return false;
      return errno_status(err, "cannot lock", path.string());
    }
    return true;
  }
  void release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

fs::path state_root() {
  if (const char* d = std::getenv("CKPT_STATE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_RUNTIME_DIR"); d && *d) return fs::path(d) / "ckpt";
  return "/tmp/ckpt-" + std::to_string(::getuid());
}

fs::path queue_dir_of(const std::string& canonical) {
  Hasher h;
  h.update(canonical.data(), canonical.size());
  return state_root() / ("queue-" + h.hex_digest().substr(0, 16));
}

json config_to_json(const CheckpointConfig& c) {
  std::string step = c.step.kind == StepChoice::kNext     ? "next"
                     : c.step.kind == StepChoice::kNumber ? std::to_string(c.step.number)
                                                          : "";
  return {{"dest", c.dest},
          {"step", step},
          {"keep", c.keep},
          {"jobs", c.jobs},
          {"manifest", c.write_manifest},
          {"endpoint", c.storage.endpoint},
          {"region", c.storage.region},
          {"part_size", c.storage.part_size},
          {"parts_in_flight", c.storage.parts_in_flight},
          {"durable", c.storage.durable}};
}

Result<CheckpointConfig> config_from_json(const json& j) {
  CheckpointConfig c;
  c.dest = j.value("dest", "");
  CKPT_ASSIGN_OR_RETURN(c.step, StepChoice::parse(j.value("step", "")));
  c.keep = j.value("keep", 0u);
  c.jobs = j.value("jobs", 0u);
  c.write_manifest = j.value("manifest", true);
  c.storage.endpoint = j.value("endpoint", "");
  c.storage.region = j.value("region", "");
  c.storage.part_size = j.value("part_size", c.storage.part_size);
  c.storage.parts_in_flight = j.value("parts_in_flight", c.storage.parts_in_flight);
  c.storage.durable = j.value("durable", false);
  return c;
}

json job_to_json(const Job& j, const json& config) {
  json out = {{"id", j.id},
              {"state", j.state},
              {"path", j.path},
              {"snapshot", j.snapshot},
              {"fingerprint", j.fingerprint},
              {"files", j.files},
              {"bytes", j.bytes},
              {"reflinked", j.reflinked},
              {"in_place", j.in_place},
              {"attempts", j.attempts},
              {"pid", j.pid},
              {"step", j.step ? json(*j.step) : json()},
              {"uri", j.uri},
              {"error", static_cast<int>(j.error)},
              {"message", j.message},
              {"acknowledged", j.acknowledged},
              {"created_ns", j.created_ns},
              {"finished_ns", j.finished_ns}};
  if (!config.is_null()) out["config"] = config;
  return out;
}

Job job_from_json(const json& j) {
  Job out;
  out.id = j.value("id", "");
  out.state = j.value("state", "");
  out.path = j.value("path", "");
  out.snapshot = j.value("snapshot", "");
  out.fingerprint = j.value("fingerprint", "");
  out.files = j.value("files", uint64_t{0});
  out.bytes = j.value("bytes", uint64_t{0});
  out.reflinked = j.value("reflinked", false);
  out.in_place = j.value("in_place", false);
  out.attempts = j.value("attempts", 0);
  out.pid = j.value("pid", 0);
  if (j.contains("step") && j["step"].is_number()) out.step = j["step"].get<uint64_t>();
  out.uri = j.value("uri", "");
  out.error = static_cast<Errc>(j.value("error", 0));
  out.message = j.value("message", "");
  out.acknowledged = j.value("acknowledged", false);
  out.created_ns = j.value("created_ns", int64_t{0});
  out.finished_ns = j.value("finished_ns", int64_t{0});
  return out;
}

Result<json> read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return json();
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = json::parse(ss.str(), nullptr, false);
  if (doc.is_discarded()) return Status(Errc::kCorrupt, "queue file " + p.string() + " is not valid JSON");
  return doc;
}

Status write_json(const fs::path& p, const json& doc) {
  return write_file_atomic(p, doc.dump(1) + "\n");
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void remove_snapshot(const std::string& snapshot) {
  if (snapshot.empty()) return;
  std::error_code ec;
  fs::remove_all(snapshot, ec);
  fs::remove(snapshot + ".queue", ec);
}

// A finished or replaced job's snapshot goes; a job uploaded in place has none.
void discard(const Job& job) {
  if (!job.in_place) remove_snapshot(job.snapshot);
}

// A queue opened and locked for changes.
class Queue {
 public:
  static Result<Queue> open(const std::string& canonical) {
    return open_dir(queue_dir_of(canonical), canonical);
  }
  static Result<Queue> open_dir(const fs::path& dir, const std::string& dest) {
    Queue q;
    q.dir_ = dir;
    q.dest_ = dest;
    std::error_code ec;
    fs::create_directories(q.dir_, ec);
    if (ec) return errno_status(ec.value(), "cannot create queue directory", q.dir_.string());
    ::chmod(q.dir_.parent_path().c_str(), 0700);  // job files name paths and destinations
    CKPT_RETURN_IF_ERROR(q.lock_.acquire(q.dir_ / "lock", true).status());
    return q;
  }
  const fs::path& dir() const { return dir_; }

  Result<std::optional<std::pair<Job, json>>> slot(const char* name) {
    CKPT_ASSIGN_OR_RETURN(json doc, read_json(dir_ / name));
    if (doc.is_null()) return std::optional<std::pair<Job, json>>();
    return std::optional<std::pair<Job, json>>(std::make_pair(job_from_json(doc), doc.value("config", json())));
  }
  Status put_slot(const char* name, const Job& job, const json& config) {
    return write_json(dir_ / name, job_to_json(job, config));
  }
  void clear_slot(const char* name) { ::unlink((dir_ / name).c_str()); }

  Result<std::vector<Job>> history() {
    CKPT_ASSIGN_OR_RETURN(json doc, read_json(dir_ / "history.json"));
    std::vector<Job> out;
    if (doc.is_array()) {
      for (const auto& j : doc) out.push_back(job_from_json(j));
    }
    return out;
  }
  Status put_history(std::vector<Job> jobs) {
    if (jobs.size() > kHistory) jobs.erase(jobs.begin(), jobs.end() - kHistory);
    json doc = json::array();
    for (const auto& j : jobs) doc.push_back(job_to_json(j, json()));
    return write_json(dir_ / "history.json", doc);
  }
  Status finish(Job job) {
    job.finished_ns = now_ns();
    CKPT_ASSIGN_OR_RETURN(auto h, history());
    h.push_back(std::move(job));
    return put_history(std::move(h));
  }

  // A running job whose uploader is gone is queued again (or failed after kMaxAttempts),
  // unless a newer one is queued; returns whether a job waits for an uploader.
  Result<bool> recover() {
    CKPT_ASSIGN_OR_RETURN(auto running, slot("running.json"));
    CKPT_ASSIGN_OR_RETURN(auto queued, slot("queued.json"));
    if (running) {
      FileLock probe;
      CKPT_ASSIGN_OR_RETURN(bool free, probe.acquire(dir_ / "uploader.lock", false));
      if (free) {
        Job job = running->first;
        clear_slot("running.json");
        if (queued) {
          job.state = "superseded";
          discard(job);
          CKPT_RETURN_IF_ERROR(finish(job));
        } else if (job.attempts >= kMaxAttempts) {
          job.state = "failed";
          job.error = Errc::kUnavailable;
          job.message = "the uploader of the save of " + job.path + " to " + dest_ + " died " +
                        std::to_string(job.attempts) + " times (killed, or out of memory?)";
          discard(job);
          CKPT_RETURN_IF_ERROR(finish(job));
        } else {
          spdlog::warn("the uploader of the save of {} to {} died; uploading it again", job.path, dest_);
          job.state = "queued";
          CKPT_RETURN_IF_ERROR(put_slot("queued.json", job, running->second));
          queued = running;
        }
      }
    }
    return queued.has_value();
  }

  Result<QueueState> snapshot_state() {
    QueueState st;
    st.dest = dest_;
    st.dir = dir_;
    CKPT_ASSIGN_OR_RETURN(auto q, slot("queued.json"));
    CKPT_ASSIGN_OR_RETURN(auto r, slot("running.json"));
    if (q) st.queued = q->first;
    if (r) st.running = r->first;
    CKPT_ASSIGN_OR_RETURN(st.finished, history());
    return st;
  }

 private:
  Queue() = default;
  fs::path dir_;
  std::string dest_;
  FileLock lock_;
};

// Starts `ckpt __upload DIR` detached (its own session, stdio to uploader.log) unless an
// uploader already holds the queue. Double fork: the uploader is nobody's child but init's
// (or a subreaper's such as `ckpt run`), so it outlives a `save --async` that returns at once.
Status ensure_uploader(const fs::path& dir) {
  {
    FileLock probe;
    CKPT_ASSIGN_OR_RETURN(bool free, probe.acquire(dir / "uploader.lock", false));
    if (!free) return {};
  }
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return errno_status(ec.value(), "cannot find the ckpt executable", "/proc/self/exe");
  auto log = dir / "uploader.log";
  pid_t pid = ::fork();
  if (pid < 0) return errno_status(errno, "cannot start the uploader", exe.string());
  if (pid == 0) {
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in >= 0) ::dup2(in, 0);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execl(exe.c_str(), "ckpt", "__upload", dir.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {};
}

// Snapshots named snap-<id> in a staging folder that no queue waits for: interrupted
// `save --async` calls (creator dead, no .queue sidecar) and jobs that are gone.
void remove_stale_snapshots(const fs::path& staging) {
  std::error_code ec;
  for (fs::directory_iterator it(staging, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind("snap-", 0) != 0 || it->path().extension() == ".queue") continue;
    auto sidecar = it->path().string() + ".queue";
    std::ifstream in(sidecar);
    std::string qdir;
    if (!in) {
      if (!layout::id_may_be_live(name.substr(5))) remove_snapshot(it->path().string());
      continue;
    }
    std::getline(in, qdir);
    bool wanted = false;
    for (const char* slot : {"queued.json", "running.json"}) {
      auto doc = read_json(fs::path(qdir) / slot);
      if (doc.ok() && doc->is_object() && doc->value("snapshot", "") == it->path().string()) wanted = true;
    }
    if (!wanted) remove_snapshot(it->path().string());
  }
}

Job upload(const Job& job, const json& config_doc) {
  Job done = job;
  auto config = config_from_json(config_doc);
  Status st = config.status();
  if (st.ok()) {
    Checkpointer cp(*config);
    auto r = cp.save_path(job.snapshot);
    if (r.ok()) {
      done.state = "committed";
      done.step = r->step;
      done.uri = r->uri;
      return done;
    }
    st = r.status();
  }
  done.state = "failed";
  done.error = st.code();
  done.message = st.message();
  return done;
}

}  // namespace

Result<Job> enqueue(const SaveOptions& options, Job job);

Result<std::string> canonical_dest(const std::string& dest) {
  if (is_unset_location(dest)) {
    return Status(Errc::kInvalidArgument, "no checkpoint destination: pass --checkpoint-path or set CKPT_DEST");
  }
  CKPT_ASSIGN_OR_RETURN(auto loc, parse_location(dest));
  if (!loc.is_local()) return loc.uri;
  std::error_code ec;
  auto abs = fs::absolute(loc.path, ec).lexically_normal().string();
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

Result<Job> save(const SaveOptions& options, const fs::path& path) {
  CKPT_ASSIGN_OR_RETURN(std::string dest, canonical_dest(options.config.dest));
  std::error_code ec;
  fs::path source = fs::absolute(path, ec);
  Job job;
  job.id = layout::new_save_id();
  job.created_ns = now_ns();
  job.path = path == "-" ? "stdin" : source.string();
  if (options.in_place && path != "-") {
    CKPT_ASSIGN_OR_RETURN(auto scanned, scan(source));
    job.fingerprint = scanned.fingerprint;
    if (!options.skip_if_fingerprint.empty() && job.fingerprint == options.skip_if_fingerprint) {
      job.state = "skipped";
      return job;
    }
    job.snapshot = source.string();
    job.in_place = true;
    job.files = scanned.files;
    job.bytes = scanned.bytes;
    return enqueue(options, std::move(job));
  }
  fs::path staging = options.staging;
  if (staging.empty()) {
    const char* env = std::getenv("CKPT_STAGING");
    staging = env && *env ? fs::path(env) : source.parent_path() / ".ckpt-staging";
  }
  fs::create_directories(staging, ec);
  if (ec) return errno_status(ec.value(), "cannot create staging directory", staging.string());
  remove_stale_snapshots(staging);
  fs::path dir = staging / ("snap-" + job.id);
  Result<Snapshot> snap = Status(Errc::kInternal, "no snapshot");
  if (path == "-") {
    FdSource in(STDIN_FILENO, false, "stdin");
    snap = take_stream_snapshot(in, dir);
  } else {
    snap = take_snapshot(source, dir, staging, options.rounds, options.skip_if_fingerprint);
  }
  if (!snap.ok()) return snap.status();
  job.fingerprint = snap->fingerprint;
  if (snap->skipped) {
    job.state = "skipped";
    return job;
  }
  job.snapshot = dir.string();
  job.files = snap->files;
  job.bytes = snap->bytes;
  job.reflinked = snap->reflinked;
  job.state = "queued";
  spdlog::debug("snapshot of {}: {} files, {} bytes in {:.3f} s ({})", job.path, job.files, job.bytes,
                snap->seconds, job.reflinked ? "reflinks" : "copies");
  return enqueue(options, std::move(job));
}

// Queues a job (replacing a queued one) and makes sure an uploader runs.
Result<Job> enqueue(const SaveOptions& options, Job job) {
  CKPT_ASSIGN_OR_RETURN(std::string dest, canonical_dest(options.config.dest));
  CheckpointConfig config = options.config;
  config.dest = dest;
  auto queue = Queue::open(dest);
  if (!queue.ok()) {
    discard(job);
    return queue.status();
  }
  Status st = [&]() -> Status {
    CKPT_RETURN_IF_ERROR(queue->recover().status());
    CKPT_ASSIGN_OR_RETURN(auto older, queue->slot("queued.json"));
    if (older) {
      Job replaced = older->first;
      replaced.state = "superseded";
      discard(replaced);
      CKPT_RETURN_IF_ERROR(queue->finish(replaced));
    }
    CKPT_RETURN_IF_ERROR(queue->put_slot("queued.json", job, config_to_json(config)));
    // Written after the job, so a concurrent cleanup never sees a sidecar without its job.
    if (job.in_place) return Status();
    return write_file_atomic(job.snapshot + ".queue", queue->dir().string() + "\n");
  }();
  if (!st.ok()) {
    discard(job);
    return st;
  }
  fs::path qdir = queue->dir();
  queue = Status(Errc::kInternal, "released");  // unlock: the uploader takes the lock
  CKPT_RETURN_IF_ERROR(ensure_uploader(qdir));
  return job;
}

Result<QueueState> state(const std::string& dest) {
  CKPT_ASSIGN_OR_RETURN(std::string canonical, canonical_dest(dest));
  if (!fs::exists(queue_dir_of(canonical))) {
    QueueState empty;
    empty.dest = canonical;
    empty.dir = queue_dir_of(canonical);
    return empty;
  }
  bool waiting = false;
  QueueState st;
  {
    CKPT_ASSIGN_OR_RETURN(auto queue, Queue::open(canonical));
    CKPT_ASSIGN_OR_RETURN(waiting, queue.recover());
    CKPT_ASSIGN_OR_RETURN(st, queue.snapshot_state());
  }  // unlocked: the uploader takes the lock
  if (waiting) CKPT_RETURN_IF_ERROR(ensure_uploader(st.dir));
  return st;
}

Result<QueueState> wait_idle(const std::string& dest,
                             std::optional<std::chrono::steady_clock::time_point> deadline) {
  for (;;) {
    CKPT_ASSIGN_OR_RETURN(auto st, state(dest));
    if (st.idle()) return st;
    if (deadline && std::chrono::steady_clock::now() >= *deadline) {
      return Status(Errc::kTimeout, "saves to " + st.dest + " still pending: " +
                                        (st.running ? "one uploading" : "none uploading") +
                                        (st.queued ? ", one queued" : ""));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<std::vector<Job>> failures(const std::string& dest, bool acknowledge) {
  CKPT_ASSIGN_OR_RETURN(std::string canonical, canonical_dest(dest));
  std::vector<Job> out;
  if (!fs::exists(queue_dir_of(canonical))) return out;
  CKPT_ASSIGN_OR_RETURN(auto queue, Queue::open(canonical));
  CKPT_ASSIGN_OR_RETURN(auto history, queue.history());
  bool changed = false;
  for (auto& j : history) {
    if (j.state != "failed" || j.acknowledged) continue;
    out.push_back(j);
    if (acknowledge) j.acknowledged = changed = true;
  }
  if (changed) CKPT_RETURN_IF_ERROR(queue.put_history(history));
  return out;
}

int run_uploader(const fs::path& dir) {
  for (;;) {
    FileLock me;
    auto got = me.acquire(dir / "uploader.lock", false);
    if (!got.ok() || !*got) return 0;  // another uploader has the queue
    for (;;) {
      std::optional<std::pair<Job, json>> next;
      {
        auto queue = Queue::open_dir(dir, "");
        if (!queue.ok()) return 1;
        auto slot = queue->slot("queued.json");
        if (!slot.ok() || !*slot) break;
        next = **slot;
        next->first.state = "running";
        next->first.pid = static_cast<int>(::getpid());
        ++next->first.attempts;
        if (!queue->put_slot("running.json", next->first, next->second).ok()) return 1;
        queue->clear_slot("queued.json");
      }
      const Job& job = next->first;
      spdlog::info("uploading {} ({} files) to {}", job.path, job.files, next->second.value("dest", ""));
      Job result = upload(job, next->second);
      {
        auto queue = Queue::open_dir(dir, "");
        if (!queue.ok()) return 1;
        // Gone before the job is: whoever sees the queue idle finds no snapshot left.
        discard(job);
        if (!queue->finish(result).ok()) return 1;
        queue->clear_slot("running.json");
      }
      if (result.state == "failed") {
        spdlog::error("save of {} failed: {}", job.path, result.message);
      } else {
        spdlog::info("committed {}", result.uri);
      }
    }
    me.release();
    // A job queued between our last look and the release found our lock and started no
    // uploader: look once more now that the lock is free.
    auto queue = Queue::open_dir(dir, "");
    if (!queue.ok()) return 1;
    auto slot = queue->slot("queued.json");
    if (!slot.ok() || !*slot) return 0;
  }
}

}  // namespace ckpt::async
