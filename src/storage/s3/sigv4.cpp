#include "storage/s3/sigv4.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <utility>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

namespace ckpt::s3 {
namespace {

// SHA-256 and HMAC from OpenSSL's libcrypto, which libcurl already loads.
std::string sha256(std::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  ::SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

std::string hex(std::string_view raw) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : raw) {
    auto c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Name (lower case) and value (trimmed, inner runs of blanks as one space) of a header line.
std::pair<std::string, std::string> canonical_header(std::string_view line) {
  auto colon = line.find(':');
  std::string name = lower(line.substr(0, colon));
  while (!name.empty() && name.back() == ' ') name.pop_back();
  std::string value;
  if (colon != std::string_view::npos) {
    for (char c : line.substr(colon + 1)) {
      bool blank = c == ' ' || c == '\t';
      if (blank && (value.empty() || value.back() == ' ')) continue;
      value.push_back(blank ? ' ' : c);
    }
    if (!value.empty() && value.back() == ' ') value.pop_back();
  }
  return {name, value};
}

}  // namespace

std::string sha256_hex(std::string_view data) { return hex(sha256(data)); }

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ::HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

bool curl_sigv4_misorders(const std::vector<std::string>& header_lines) {
  std::vector<std::string> names;
  for (const auto& l : header_lines) names.push_back(canonical_header(l).first);
  for (const auto& a : names)
    for (const auto& b : names)
      if (b.size() > a.size() && b.compare(0, a.size(), a) == 0) return true;
  return false;
}

std::vector<std::string> sigv4_sign(const SigV4Request& req, const Credentials& creds) {
  std::string_view url = req.url;
  auto scheme = url.find("://");
  if (scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  auto slash = url.find('/');
  std::string host(url.substr(0, slash));
  std::string_view target = slash == std::string_view::npos ? "/" : url.substr(slash);
  auto q = target.find('?');
  std::string path(target.substr(0, q));
  std::vector<std::string> params;
  if (q != std::string_view::npos) {
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
      auto amp = rest.find('&');
      std::string p(rest.substr(0, amp));
      if (p.find('=') == std::string::npos) p += '=';
      params.push_back(std::move(p));
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    }
  }
  std::sort(params.begin(), params.end());
  std::string query;
  for (const auto& p : params) query += (query.empty() ? "" : "&") + p;

  std::vector<std::pair<std::string, std::string>> headers = {{"host", host},
                                                              {"x-amz-date", req.amz_date}};
  for (const auto& l : req.headers) headers.push_back(canonical_header(l));
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical_headers, signed_headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {  // repeated: one line, joined
      canonical_headers.back() = ',';
      canonical_headers += headers[i].second + "\n";
      continue;
    }
    canonical_headers += headers[i].first + ":" + headers[i].second + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + headers[i].first;
  }
  std::string canonical_request = req.method + "\n" + path + "\n" + query + "\n" +
                                  canonical_headers + "\n" + signed_headers + "\n" +
                                  req.payload_hash;
  std::string day = req.amz_date.substr(0, 8);
  std::string scope = day + "/" + req.region + "/" + req.service + "/aws4_request";
  std::string to_sign =
      "AWS4-HMAC-SHA256\n" + req.amz_date + "\n" + scope + "\n" + sha256_hex(canonical_request);
  std::string key = hmac_sha256("AWS4" + creds.secret_key, day);
  key = hmac_sha256(key, req.region);
  key = hmac_sha256(key, req.service);
  key = hmac_sha256(key, "aws4_request");
  return {"Host: " + host, "x-amz-date: " + req.amz_date,
          "Authorization: AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + scope +
              ", SignedHeaders=" + signed_headers +
              ", Signature=" + hex(hmac_sha256(key, to_sign))};
}

}  // namespace ckpt::s3
