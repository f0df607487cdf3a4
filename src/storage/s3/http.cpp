#include "storage/s3/http.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "storage/s3/sigv4.h"

namespace ckpt::s3 {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;

// An easy handle (it keeps its connections alive across requests) and the socket it last
// opened, which curl does not expose while a transfer runs.
struct Handle {
  CURL* curl = nullptr;
  curl_socket_t sock = CURL_SOCKET_BAD;
};

int on_sockopt(void* user, curl_socket_t sock, curlsocktype) {
  static_cast<Handle*>(user)->sock = sock;
  return CURL_SOCKOPT_OK;
}

struct Transfer {
  const HttpRequest* req = nullptr;
  Handle* handle = nullptr;
  HttpResponse resp;
  size_t body_pos = 0;
  Status sink_status;
  bool sink_failed = false;
  bool headers_seen = false;
};

// On a reused connection Linux has left quick-ACK mode, so the ACK for a response's header
// segment waits up to 40 ms, and a server using Nagle (radosgw's beast) holds back a small
// body until it comes: every small GET took 40+ ms. Setting TCP_QUICKACK once the headers
// are in sends that pending ACK at once.
void ack_now(const Handle* h) {
  if (h->sock == CURL_SOCKET_BAD) return;
  int one = 1;
  ::setsockopt(h->sock, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line == "\r\n" || line == "\n") {
    ack_now(t->handle);
    return size * n;
  }
  if (line.rfind("HTTP/", 0) == 0) {
    t->resp.headers.clear();  // a new header block (after 100 Continue)
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.remove_suffix(1);
    t->resp.headers[name] = std::string(value);
  }
  return size * n;
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  long code = 0;
  curl_easy_getinfo(t->handle->curl, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 200 && code < 300 && t->req->on_data) {
    if (!t->headers_seen && t->req->on_headers) t->req->on_headers(code, t->resp.headers);
    t->headers_seen = true;
    Status st = t->req->on_data(data, len);
    if (!st.ok()) {
      t->sink_status = std::move(st);
      t->sink_failed = true;
      return 0;
    }
    return len;
  }
  if (t->resp.body.size() < kMaxErrorBody || (code >= 200 && code < 300))
    t->resp.body.append(data, len);
  return len;
}

size_t on_read(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const HttpRequest& req = *t->req;
  size_t len = std::min(size * n, req.body_len - t->body_pos);
  if (len && req.body_fd >= 0) {
    ssize_t got;
    do {
      got = ::pread(req.body_fd, buf, len, static_cast<off_t>(req.body_offset + t->body_pos));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {  // an error, or a file that shrank under us: not worth a retry
      const int err = errno;
      t->sink_failed = true;
      const std::string source = "the source file of " + req.what;
      t->sink_status = got < 0 ? errno_status(err, "cannot read", source)
                               : Status(Errc::kIo, source + " shrank while being read");
      return CURL_READFUNC_ABORT;
    }
    len = static_cast<size_t>(got);
  } else if (len) {
    std::memcpy(buf, req.body + t->body_pos, len);
  }
  t->body_pos += len;
  return len;
}

bool retryable_curl(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_READ_ERROR:
      return true;
    default:
      return false;
  }
}

std::string amz_date_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

double jitter_unit() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

HttpClient::HttpClient(RetryPolicy policy, long stall_timeout_s, long connect_timeout_s)
    : policy_(policy), stall_timeout_s_(stall_timeout_s), connect_timeout_s_(connect_timeout_s) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

HttpClient::~HttpClient() {
  for (void* p : idle_) {
    auto* h = static_cast<Handle*>(p);
    curl_easy_cleanup(h->curl);
    delete h;
  }
}

void* HttpClient::acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  CURL* curl = curl_easy_init();
  if (!curl) return nullptr;
  return new Handle{curl, CURL_SOCKET_BAD};
}

void HttpClient::release(void* handle) {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(handle);
}

Result<HttpResponse> HttpClient::execute(const HttpRequest& req) {
  unsigned attempts = req.quick ? 2 : std::max(1u, policy_.max_attempts);
  std::string last_error;
  bool last_timeout = false;
  bool refreshed = false;
  for (unsigned attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) {
      double delay = policy_.delay_s(attempt - 1, jitter_unit());
      spdlog::debug("s3: retrying {} {} in {:.2f} s after: {}", req.method, req.what, delay,
                    last_error);
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    }

    Credentials creds;
    if (req.credentials) {
      auto c = req.credentials();
      if (!c.ok()) return c.status();
      creds = std::move(c).value();
    }

    auto* handle = static_cast<Handle*>(acquire());
    if (!handle) return Status(Errc::kInternal, "curl_easy_init failed");
    CURL* h = handle->curl;
    curl_easy_reset(h);
    Transfer t;
    t.req = &req;
    t.handle = handle;
    char errbuf[CURL_ERROR_SIZE] = {0};

    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, req.quick ? 1L : connect_timeout_s_);
    // A server that stops sending (or answering) trips this instead of hanging forever.
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, req.quick ? 2L : stall_timeout_s_);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, handle);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L << 10);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L << 10);

    if (req.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (req.method == "PUT") {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body_len));
    } else if (req.method == "POST") {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body ? req.body : "");
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body_len));
    } else if (req.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }

    std::vector<std::string> lines = req.headers;
    if (req.attempt_headers)
      for (auto& hd : req.attempt_headers()) lines.push_back(std::move(hd));
    // No "Expect:" override here: curl would sign the empty header it then leaves out.
    std::string sigv4;
    if (req.credentials) {
      lines.push_back("x-amz-content-sha256: UNSIGNED-PAYLOAD");
      if (!creds.session_token.empty())
        lines.push_back("x-amz-security-token: " + creds.session_token);
      if (curl_sigv4_misorders(lines)) {  // e.g. UploadPartCopy: signed here (see sigv4.h)
        SigV4Request sr;
        sr.method = req.method;
        sr.url = req.url;
        sr.headers = lines;
        sr.region = req.region;
        sr.amz_date = amz_date_now();
        for (auto& hd : sigv4_sign(sr, creds)) lines.push_back(std::move(hd));
      } else {
        sigv4 = "aws:amz:" + req.region + ":s3";
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
        curl_easy_setopt(h, CURLOPT_USERNAME, creds.access_key.c_str());
        curl_easy_setopt(h, CURLOPT_PASSWORD, creds.secret_key.c_str());
      }
    }
    curl_slist* headers = nullptr;
    for (const auto& hd : lines) headers = curl_slist_append(headers, hd.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

    auto started = std::chrono::steady_clock::now();
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    // Drop secrets from the reused handle before it goes back to the pool.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_slist_free_all(headers);
    curl_easy_reset(h);
    release(handle);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();

    if (t.sink_failed) return t.sink_status;
    if (rc != CURLE_OK) {
      last_timeout = rc == CURLE_OPERATION_TIMEDOUT;
      last_error = std::string(curl_easy_strerror(rc));
      if (errbuf[0]) last_error += " (" + std::string(errbuf) + ")";
      spdlog::debug("s3: {} {} failed after {:.0f} ms: {}", req.method, req.what, ms, last_error);
      if (!retryable_curl(rc)) return Status(Errc::kUnavailable, req.what + ": " + last_error);
      continue;
    }
    spdlog::debug("s3: {} {} -> {} in {:.0f} ms", req.method, req.what, code, ms);
    t.resp.status = code;
    t.resp.attempts = attempt + 1;
    if (code >= 200 && code < 300) return std::move(t.resp);
    auto err = parse_error(t.resp.body);
    if (err && req.credentials_expired && !refreshed &&
        (err->code == "ExpiredToken" || err->code == "TokenRefreshRequired")) {
      refreshed = true;
      req.credentials_expired();
      last_error = "HTTP " + std::to_string(code) + " " + err->code;
      ++attempts;  // a refresh is not a failed attempt
      continue;
    }
    if (retryable_http(code, err ? err->code : "")) {
      last_timeout = false;
      last_error = "HTTP " + std::to_string(code) + (err ? " " + err->code : std::string());
      continue;
    }
    return std::move(t.resp);
  }
  std::string msg =
      req.what + ": " + last_error + " (gave up after " + std::to_string(attempts) + " attempts)";
  if (last_timeout) return Status(Errc::kTimeout, msg);
  return Status(Errc::kUnavailable, msg);
}

}  // namespace ckpt::s3
