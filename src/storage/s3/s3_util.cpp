#include "storage/s3/s3_util.h"

#include <tinyxml2.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace ckpt::s3 {
namespace {

bool unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const char* child_text(const tinyxml2::XMLElement* e, const char* name) {
  const tinyxml2::XMLElement* c = e ? e->FirstChildElement(name) : nullptr;
  const char* t = c ? c->GetText() : nullptr;
  return t ? t : "";
}

// Parses XML, returning the root element or nullptr.
const tinyxml2::XMLElement* parse_root(tinyxml2::XMLDocument& doc, std::string_view xml) {
  if (doc.Parse(xml.data(), xml.size()) != tinyxml2::XML_SUCCESS) return nullptr;
  return doc.RootElement();
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string uri_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += uri_encode(k, false) + "=" + uri_encode(v, false);
  }
  return out;
}

std::string canonical_query(std::vector<std::pair<std::string, std::string>> params) {
  for (auto& [k, v] : params) {
    k = uri_encode(k, false);
    v = uri_encode(v, false);
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

Result<Addressing> parse_addressing(std::string_view value) {
  std::string v = lower(trim(value));
  if (v.empty() || v == "auto") return Addressing::kAuto;
  if (v == "path") return Addressing::kPath;
  if (v == "virtual") return Addressing::kVirtual;
  return Status(Errc::kInvalidArgument, "S3 addressing style must be auto, path or virtual, not '" +
                                            std::string(value) + "'");
}

Result<Endpoint> parse_endpoint(std::string_view url) {
  url = trim(url);
  Endpoint ep;
  ep.custom = true;
  auto pos = url.find("://");
  if (pos == std::string_view::npos) {
    ep.scheme = "https";
  } else {
    ep.scheme = lower(url.substr(0, pos));
    url.remove_prefix(pos + 3);
  }
  if (ep.scheme != "http" && ep.scheme != "https")
    return Status(Errc::kInvalidArgument,
                  "S3 endpoint must be an http:// or https:// URL, not '" + std::string(url) + "'");
  // A path after the host (e.g. a trailing '/') is not supported by S3 endpoints; drop it.
  auto slash = url.find('/');
  if (slash != std::string_view::npos) {
    if (trim(url.substr(slash)).find_first_not_of('/') != std::string_view::npos)
      return Status(Errc::kInvalidArgument,
                    "S3 endpoint must not contain a path: '" + std::string(url) + "'");
    url = url.substr(0, slash);
  }
  if (url.empty()) return Status(Errc::kInvalidArgument, "S3 endpoint has no host");
  ep.host = std::string(url);
  return ep;
}

Endpoint aws_endpoint(std::string_view region) {
  Endpoint ep;
  ep.scheme = "https";
  ep.host = region.empty() || region == "us-east-1"
                ? "s3.amazonaws.com"
                : "s3." + std::string(region) + ".amazonaws.com";
  return ep;
}

bool dns_compatible_bucket(std::string_view b, bool https) {
  if (b.size() < 3 || b.size() > 63) return false;
  if (!std::isalnum(static_cast<unsigned char>(b.front())) ||
      !std::isalnum(static_cast<unsigned char>(b.back())))
    return false;
  for (char c : b) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
      return false;
    if (c == '.' && https) return false;  // the wildcard certificate covers one label only
  }
  return b.find("..") == std::string_view::npos;
}

bool use_virtual_host(Addressing style, const Endpoint& ep, std::string_view bucket) {
  switch (style) {
    case Addressing::kPath:
      return false;
    case Addressing::kVirtual:
      return true;
    case Addressing::kAuto:
      return !ep.custom && dns_compatible_bucket(bucket, ep.scheme == "https");
  }
  return false;
}

std::string object_url(const Endpoint& ep, bool virtual_host, std::string_view bucket,
                       std::string_view key, std::string_view query) {
  std::string url = ep.scheme + "://";
  if (virtual_host) {
    url += std::string(bucket) + "." + ep.host + "/";
  } else {
    url += ep.host + "/" + uri_encode(bucket, false);
    if (!key.empty() || !query.empty()) url += "/";
  }
  url += uri_encode(key, true);
  if (!query.empty()) url += "?" + std::string(query);
  return url;
}

std::string copy_source(std::string_view bucket, std::string_view key) {
  return "/" + uri_encode(bucket, false) + "/" + uri_encode(key, true);
}

Result<ListPage> parse_list_objects_v2(std::string_view xml) {
  tinyxml2::XMLDocument doc;
  const auto* root = parse_root(doc, xml);
  if (!root || std::string_view(root->Name()) != "ListBucketResult")
    return Status(Errc::kUnavailable, "S3 returned an unreadable ListObjectsV2 answer");
  ListPage page;
  page.truncated = std::string_view(child_text(root, "IsTruncated")) == "true";
  page.next_token = child_text(root, "NextContinuationToken");
  for (const auto* c = root->FirstChildElement("Contents"); c;
       c = c->NextSiblingElement("Contents")) {
    ListPage::Entry e;
    e.key = child_text(c, "Key");
    e.size = std::strtoull(child_text(c, "Size"), nullptr, 10);
    page.entries.push_back(std::move(e));
  }
  if (page.truncated && page.next_token.empty())
    return Status(Errc::kUnavailable, "S3 listing is truncated but has no continuation token");
  return page;
}

std::optional<S3Error> parse_error(std::string_view xml) {
  tinyxml2::XMLDocument doc;
  const auto* root = parse_root(doc, xml);
  if (!root || std::string_view(root->Name()) != "Error") return std::nullopt;
  return S3Error{child_text(root, "Code"), child_text(root, "Message")};
}

Result<std::string> parse_initiate_multipart(std::string_view xml) {
  tinyxml2::XMLDocument doc;
  const auto* root = parse_root(doc, xml);
  std::string id = root ? child_text(root, "UploadId") : "";
  if (id.empty()) return Status(Errc::kUnavailable, "S3 did not return a multipart upload id");
  return id;
}

Result<std::string> parse_copy_result(std::string_view xml) {
  tinyxml2::XMLDocument doc;
  const auto* root = parse_root(doc, xml);
  std::string_view name = root ? root->Name() : "";
  std::string etag =
      name == "CopyObjectResult" || name == "CopyPartResult" ? child_text(root, "ETag") : "";
  if (etag.empty()) return Status(Errc::kUnavailable, "S3 returned an unreadable copy answer");
  return etag;
}

Result<std::vector<OpenUpload>> parse_list_multipart_uploads(std::string_view xml) {
  tinyxml2::XMLDocument doc;
  const auto* root = parse_root(doc, xml);
  if (!root || std::string_view(root->Name()) != "ListMultipartUploadsResult")
    return Status(Errc::kUnavailable, "S3 returned an unreadable ListMultipartUploads answer");
  std::vector<OpenUpload> out;
  for (const auto* u = root->FirstChildElement("Upload"); u; u = u->NextSiblingElement("Upload"))
    out.push_back({child_text(u, "Key"), child_text(u, "UploadId"),
                   parse_iso8601(child_text(u, "Initiated"))});
  return out;
}

std::string complete_multipart_body(const std::vector<std::string>& etags) {
  tinyxml2::XMLPrinter printer(nullptr, true);
  printer.OpenElement("CompleteMultipartUpload");
  for (size_t i = 0; i < etags.size(); ++i) {
    printer.OpenElement("Part");
    printer.OpenElement("PartNumber");
    printer.PushText(static_cast<int>(i + 1));
    printer.CloseElement();
    printer.OpenElement("ETag");
    printer.PushText(etags[i].c_str());
    printer.CloseElement();
    printer.CloseElement();
  }
  printer.CloseElement();
  return std::string(printer.CStr(), printer.CStrSize() - 1);
}

std::optional<std::time_t> parse_iso8601(std::string_view s) {
  int y, mo, d, h, mi, sec;
  std::string str(trim(s));
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6)
    return std::nullopt;
  if (str.back() != 'Z' && str.find('+') == std::string::npos) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  std::time_t t = timegm(&tm);
  // "+hh:mm" offsets (IMDS writes Z, but be lenient).
  auto plus = str.find('+', 19);
  if (plus != std::string::npos) {
    int oh = 0, om = 0;
    if (std::sscanf(str.c_str() + plus, "+%2d:%2d", &oh, &om) == 2) t -= oh * 3600 + om * 60;
  }
  return t;
}

Result<Credentials> parse_assume_role_response(std::string_view xml) {
  tinyxml2::XMLDocument doc;
  const auto* root = parse_root(doc, xml);
  const auto* result = root ? root->FirstChildElement("AssumeRoleWithWebIdentityResult") : nullptr;
  const auto* creds = result ? result->FirstChildElement("Credentials") : nullptr;
  if (!creds) return Status(Errc::kUnavailable, "STS returned an unreadable answer");
  Credentials c;
  c.access_key = child_text(creds, "AccessKeyId");
  c.secret_key = child_text(creds, "SecretAccessKey");
  c.session_token = child_text(creds, "SessionToken");
  c.expiration = parse_iso8601(child_text(creds, "Expiration"));
  if (c.access_key.empty() || c.secret_key.empty())
    return Status(Errc::kUnavailable, "STS answer has no access key");
  return c;
}

Result<Credentials> parse_imds_credentials(std::string_view json) {
  auto doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return Status(Errc::kUnavailable, "instance metadata returned unreadable credentials");
  Credentials c;
  c.access_key = doc.value("AccessKeyId", "");
  c.secret_key = doc.value("SecretAccessKey", "");
  c.session_token = doc.value("Token", "");
  if (doc.contains("Expiration") && doc["Expiration"].is_string())
    c.expiration = parse_iso8601(doc["Expiration"].get<std::string>());
  if (doc.value("Code", "Success") != "Success" || c.access_key.empty() || c.secret_key.empty())
    return Status(Errc::kUnavailable, "instance metadata has no usable credentials");
  return c;
}

IniFile parse_ini(std::string_view text) {
  IniFile ini;
  std::string section;
  bool have_section = false;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    bool indented = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    std::string_view line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(trim(line.substr(1, line.size() - 2)));
      have_section = true;
      ini[section];
      continue;
    }
    // Indented lines continue a nested block (e.g. "s3 =\n  max_concurrent_requests = 4").
    if (!have_section || indented) continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key = lower(trim(line.substr(0, eq)));
    std::string_view value = trim(line.substr(eq + 1));
    ini[section][key] = std::string(value);
  }
  return ini;
}

const std::map<std::string, std::string>* ini_profile(const IniFile& ini, const std::string& name,
                                                      bool config_file) {
  auto find = [&](const std::string& s) -> const std::map<std::string, std::string>* {
    auto it = ini.find(s);
    return it == ini.end() ? nullptr : &it->second;
  };
  if (!config_file) return find(name);
  if (const auto* p = find("profile " + name)) return p;
  return name == "default" ? find("default") : nullptr;
}

double RetryPolicy::delay_s(unsigned attempt, double unit) const {
  double cap = std::min(max_delay_s,
                        base_delay_s * std::ldexp(1.0, static_cast<int>(std::min(attempt, 30u))));
  return cap * unit;
}

bool retryable_http(long status, std::string_view code) {
  if (status >= 500 || status == 429) return true;
  return code == "SlowDown" || code == "Throttling" || code == "ThrottlingException" ||
         code == "RequestTimeout" || code == "RequestLimitExceeded" ||
         code == "TooManyRequestsException" || code == "RequestThrottled" ||
         code == "InternalError" || code == "ServiceUnavailable";
}

Status http_failure_status(long status, const std::optional<S3Error>& err, std::string_view what) {
  std::string code = err ? err->code : "";
  std::string detail = "HTTP " + std::to_string(status);
  if (!code.empty()) detail += " " + code;
  if (err && !err->message.empty()) detail += ": " + err->message;
  std::string w(what);
  if (code == "NoSuchBucket")
    return Status(Errc::kNotFound, w + ": the bucket does not exist (" + detail + ")");
  if (code == "NoSuchUpload")
    return Status(Errc::kFailedPrecondition,
                  w + ": the multipart upload vanished (" + detail + ")");
  if (status == 404) return Status(Errc::kNotFound, w + ": not found (" + detail + ")");
  if (status == 301 || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" ||
      code == "IllegalLocationConstraintException")
    return Status(Errc::kFailedPrecondition, w + ": the bucket is in another region or endpoint (" +
                                                 detail + "); set AWS_REGION or --region");
  if (status == 401 || status == 403) {
    std::string hint;
    if (code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId")
      hint = "; check the access key and secret";
    else if (code == "ExpiredToken" || code == "InvalidToken")
      hint = "; the session token is not valid";
    return Status(Errc::kPermissionDenied, w + ": access denied (" + detail + ")" + hint);
  }
  if (status >= 500 || status == 429 || retryable_http(status, code))
    return Status(Errc::kUnavailable, w + ": the server kept failing (" + detail + ")");
  if (code == "InvalidBucketName" || code == "KeyTooLongError")
    return Status(Errc::kInvalidArgument, w + ": request rejected (" + detail + ")");
  return Status(Errc::kFailedPrecondition, w + ": request failed (" + detail + ")");
}

}  // namespace ckpt::s3
