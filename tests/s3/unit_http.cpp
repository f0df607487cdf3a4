// The HTTP layer against a scripted in-process server on loopback: retries with backoff on
// 5xx/SlowDown/resets, immediate failure on 4xx, a timeout (not a hang) when the server goes
// silent, and what a signed request carries (and never carries).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/s3/http.h"

using namespace ckpt;
using namespace ckpt::s3;

namespace {

// Answers each request with the next scripted action: an HTTP response text, "RESET" (close
// without answering) or "STALL" (never answer). Records every request's head.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    REQUIRE(::listen(fd_, 16) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (int c : stalled_) ::close(c);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      // One connection may carry several requests (curl keeps connections alive).
      for (;;) {
        std::string head;
        char ch;
        while (head.find("\r\n\r\n") == std::string::npos && ::read(c, &ch, 1) == 1) head += ch;
        if (head.empty()) break;
        size_t body = 0;
        auto cl = head.find("Content-Length: ");
        if (cl == std::string::npos) cl = head.find("content-length: ");
        if (cl != std::string::npos) body = std::stoul(head.substr(cl + 16));
        for (size_t i = 0; i < body && ::read(c, &ch, 1) == 1; ++i) {
        }
        std::string action;
        {
          std::lock_guard<std::mutex> lock(mu_);
          requests_.push_back(head);
          action = next_ < script_.size() ? script_[next_++] : script_.back();
        }
        if (action == "RESET") {
          ::close(c);
          c = -1;
          break;
        }
        if (action == "STALL") {
          stalled_.push_back(c);
          c = -1;
          break;
        }
        (void)!::write(c, action.data(), action.size());
      }
      if (c >= 0) ::close(c);
    }
  }

  std::vector<std::string> script_;
  size_t next_ = 0;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::vector<int> stalled_;
};

std::string answer(int status, const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

const std::string kSlowDown = answer(
    503, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>");

HttpRequest get(const ScriptedServer& s) {
  HttpRequest r;
  r.url = s.url("/bucket/key");
  r.what = "s3://bucket/key";
  return r;
}

}  // namespace

TEST_CASE("5xx, SlowDown and resets are retried until an answer comes") {
  ScriptedServer server({kSlowDown, answer(500, ""), "RESET", answer(200, "hello")});
  HttpClient http(RetryPolicy{6, 0.01, 0.05}, 5, 2);
  auto r = http.execute(get(server));
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->body == "hello");
  CHECK(server.requests().size() == 4);
}

TEST_CASE("retries stop after max_attempts with kUnavailable naming the object") {
  ScriptedServer server({kSlowDown});
  HttpClient http(RetryPolicy{3, 0.01, 0.02}, 5, 2);
  auto r = http.execute(get(server));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::kUnavailable);
  CHECK(r.status().message().find("s3://bucket/key") != std::string::npos);
  CHECK(r.status().message().find("SlowDown") != std::string::npos);
  CHECK(r.status().message().find("<Error>") == std::string::npos);
  CHECK(server.requests().size() == 3);
}

TEST_CASE("4xx answers are returned at once, without retries") {
  ScriptedServer server({answer(403, "<Error><Code>AccessDenied</Code></Error>")});
  HttpClient http(RetryPolicy{6, 0.01, 0.05}, 5, 2);
  auto r = http.execute(get(server));
  REQUIRE(r.ok());
  CHECK(r->status == 403);
  CHECK(server.requests().size() == 1);
}

TEST_CASE("a silent server gives a timeout error, not a hang") {
  ScriptedServer server({"STALL"});
  HttpClient http(RetryPolicy{2, 0.01, 0.02}, 1, 2);
  auto started = std::chrono::steady_clock::now();
  auto r = http.execute(get(server));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Errc::kTimeout);
  CHECK(secs < 10);
  CHECK(server.requests().size() == 2);
}

TEST_CASE("an unreachable endpoint fails with kUnavailable") {
  int port;
  {
    ScriptedServer probe({answer(200, "")});
    port = std::stoi(probe.url("").substr(17));
  }
  HttpClient http(RetryPolicy{2, 0.01, 0.02}, 1, 1);
  HttpRequest r;
  r.url = "http://127.0.0.1:" + std::to_string(port) + "/b/k";
  r.what = "s3://b/k";
  auto res = http.execute(r);
  REQUIRE_FALSE(res.ok());
  CHECK(res.status().code() == Errc::kUnavailable);
}

TEST_CASE("signed requests carry SigV4, the payload header and the token, never the secret") {
  ScriptedServer server({answer(200, "ok")});
  HttpClient http(RetryPolicy{1, 0.0, 0.0}, 5, 2);
  HttpRequest r = get(server);
  r.region = "eu-west-1";
  r.credentials = [] {
    return Result<Credentials>(
        Credentials{"AKIDEXAMPLE", "VERY-SECRET-KEY", "SESSION-TOKEN", std::nullopt, "test"});
  };
  REQUIRE(http.execute(r).ok());
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  const std::string& head = reqs[0];
  CHECK(head.find("Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") != std::string::npos);
  CHECK(head.find("/eu-west-1/s3/aws4_request") != std::string::npos);
  CHECK(head.find("x-amz-content-sha256: UNSIGNED-PAYLOAD") != std::string::npos);
  CHECK(head.find("x-amz-security-token: SESSION-TOKEN") != std::string::npos);
  CHECK(head.find("VERY-SECRET-KEY") == std::string::npos);
}

TEST_CASE("an expired session token makes the credentials refresh and the request go again") {
  ScriptedServer server(
      {answer(400, "<Error><Code>ExpiredToken</Code></Error>"), answer(200, "ok")});
  HttpClient http(RetryPolicy{1, 0.0, 0.0}, 5, 2);
  HttpRequest r = get(server);
  r.region = "us-east-1";
  int fetched = 0, expired = 0;
  r.credentials = [&] {
    ++fetched;
    return Result<Credentials>(
        Credentials{"AK" + std::to_string(fetched), "SK", "T", std::nullopt, "test"});
  };
  r.credentials_expired = [&] { ++expired; };
  auto res = http.execute(r);
  REQUIRE(res.ok());
  CHECK(res->status == 200);
  CHECK(expired == 1);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].find("Credential=AK2/") != std::string::npos);
}

TEST_CASE("a streamed body resumes where it stopped: attempt headers are asked again") {
  // The first answer stops after 4 of its 10 bytes and the server goes quiet on that
  // connection; the 1 s stall timeout ends the attempt and the retry asks for bytes 4-9.
  std::string cut = "HTTP/1.1 206 X\r\nContent-Length: 10\r\n\r\n0123";
  ScriptedServer server({cut, answer(206, "456789")});
  HttpRequest r = get(server);
  std::string got;
  r.attempt_headers = [&] {
    return std::vector<std::string>{"Range: bytes=" + std::to_string(got.size()) + "-9"};
  };
  r.on_data = [&](const char* d, size_t n) {
    got.append(d, n);
    return Status();
  };
  HttpClient quick(RetryPolicy{3, 0.01, 0.02}, 1, 2);
  auto res = quick.execute(r);
  REQUIRE(res.ok());
  CHECK(got == "0123456789");
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].find("Range: bytes=0-9") != std::string::npos);
  CHECK(reqs[1].find("Range: bytes=4-9") != std::string::npos);
}
