#include "storage/s3/credentials.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ckpt::s3 {
namespace {

std::string env_or(const EnvFn& env, const std::string& name, const std::string& fallback = "") {
  auto v = env(name);
  return v && !v->empty() ? *v : fallback;
}

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string home(const EnvFn& env) { return env_or(env, "HOME", "/root"); }

std::string credentials_file(const EnvFn& env) {
  return env_or(env, "AWS_SHARED_CREDENTIALS_FILE", home(env) + "/.aws/credentials");
}
std::string config_file(const EnvFn& env) {
  return env_or(env, "AWS_CONFIG_FILE", home(env) + "/.aws/config");
}
std::string profile_name(const EnvFn& env) {
  return env_or(env, "AWS_PROFILE", env_or(env, "AWS_DEFAULT_PROFILE", "default"));
}

std::string value_of(const std::map<std::string, std::string>* section, const std::string& k) {
  if (!section) return {};
  auto it = section->find(k);
  return it == section->end() ? std::string() : it->second;
}

std::string sts_endpoint(const EnvFn& env, const std::string& region) {
  std::string ep = env_or(env, "AWS_ENDPOINT_URL_STS", env_or(env, "AWS_STS_ENDPOINT"));
  if (!ep.empty()) {
    while (!ep.empty() && ep.back() == '/') ep.pop_back();
    return ep + "/";
  }
  return region.empty() ? "https://sts.amazonaws.com/"
                        : "https://sts." + region + ".amazonaws.com/";
}

Result<Credentials> web_identity(const EnvFn& env, HttpClient& http, const std::string& region,
                                 const std::string& token_file, const std::string& role_arn,
                                 const std::string& session_name) {
  auto token = read_text(token_file);
  if (!token)
    return Status(Errc::kPermissionDenied, "cannot read the web identity token file " + token_file);
  while (!token->empty() && (token->back() == '\n' || token->back() == '\r')) token->pop_back();
  std::string body = form_encode({{"Action", "AssumeRoleWithWebIdentity"},
                                  {"RoleArn", role_arn},
                                  {"RoleSessionName", session_name},
                                  {"Version", "2011-06-15"},
                                  {"WebIdentityToken", *token}});
  HttpRequest req;
  req.method = "POST";
  req.url = sts_endpoint(env, region);
  req.headers = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/xml"};
  req.body = body.data();
  req.body_len = body.size();
  req.what = "STS AssumeRoleWithWebIdentity for " + role_arn;
  CKPT_ASSIGN_OR_RETURN(HttpResponse resp, http.execute(req));
  if (resp.status != 200) {
    auto err = parse_error(resp.body);
    // STS wraps <Error> in <ErrorResponse>; fall back to the status alone.
    return Status(Errc::kPermissionDenied, req.what + " failed (HTTP " +
                                               std::to_string(resp.status) +
                                               (err ? " " + err->code : std::string()) + ")");
  }
  CKPT_ASSIGN_OR_RETURN(Credentials c, parse_assume_role_response(resp.body));
  c.source = "web identity (" + role_arn + ")";
  return c;
}

Result<Credentials> imds(const EnvFn& env, HttpClient& http) {
  std::string base = env_or(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254");
  while (!base.empty() && base.back() == '/') base.pop_back();
  HttpRequest tok;
  tok.method = "PUT";
  tok.url = base + "/latest/api/token";
  tok.headers = {"X-aws-ec2-metadata-token-ttl-seconds: 21600"};
  tok.quick = true;
  tok.what = "instance metadata token";
  CKPT_ASSIGN_OR_RETURN(HttpResponse t, http.execute(tok));
  if (t.status != 200)
    return Status(Errc::kPermissionDenied,
                  "instance metadata refused a token (HTTP " + std::to_string(t.status) + ")");
  std::string token_header = "X-aws-ec2-metadata-token: " + t.body;

  HttpRequest role_req;
  role_req.url = base + "/latest/meta-data/iam/security-credentials/";
  role_req.headers = {token_header};
  role_req.quick = true;
  role_req.what = "instance metadata role";
  CKPT_ASSIGN_OR_RETURN(HttpResponse r, http.execute(role_req));
  std::string role = r.body.substr(0, r.body.find('\n'));
  if (r.status != 200 || role.empty())
    return Status(Errc::kPermissionDenied, "instance metadata has no IAM role attached");

  HttpRequest creds_req;
  creds_req.url = base + "/latest/meta-data/iam/security-credentials/" + uri_encode(role, false);
  creds_req.headers = {token_header};
  creds_req.quick = true;
  creds_req.what = "instance metadata credentials";
  CKPT_ASSIGN_OR_RETURN(HttpResponse c, http.execute(creds_req));
  if (c.status != 200)
    return Status(Errc::kPermissionDenied, "instance metadata credentials request failed (HTTP " +
                                               std::to_string(c.status) + ")");
  CKPT_ASSIGN_OR_RETURN(Credentials creds, parse_imds_credentials(c.body));
  creds.source = "instance metadata (role " + role + ")";
  return creds;
}

}  // namespace

EnvFn process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::string resolve_region(const EnvFn& env, const std::string& override_region) {
  if (!override_region.empty()) return override_region;
  std::string r = env_or(env, "AWS_REGION", env_or(env, "AWS_DEFAULT_REGION"));
  if (!r.empty()) return r;
  if (auto text = read_text(config_file(env))) {
    IniFile ini = parse_ini(*text);
    r = value_of(ini_profile(ini, profile_name(env), true), "region");
    if (!r.empty()) return r;
  }
  return "us-east-1";
}

Result<Credentials> resolve_credentials(const EnvFn& env, HttpClient& http,
                                        const std::string& region) {
  // 1. Flyte's own variables.
  std::string ak = env_or(env, "FLYTE_AWS_ACCESS_KEY_ID");
  std::string sk = env_or(env, "FLYTE_AWS_SECRET_ACCESS_KEY");
  if (!ak.empty() && !sk.empty())
    return Credentials{ak, sk, "", std::nullopt, "FLYTE_AWS_ACCESS_KEY_ID"};

  // 2. The standard environment variables.
  ak = env_or(env, "AWS_ACCESS_KEY_ID");
  sk = env_or(env, "AWS_SECRET_ACCESS_KEY");
  if (!ak.empty() && !sk.empty())
    return Credentials{ak, sk, env_or(env, "AWS_SESSION_TOKEN"), std::nullopt, "AWS_ACCESS_KEY_ID"};

  // 3. Shared credentials file, then config file, for the profile.
  std::string profile = profile_name(env);
  bool profile_explicit = env("AWS_PROFILE").has_value() || env("AWS_DEFAULT_PROFILE").has_value();
  bool profile_seen = false;
  for (bool config : {false, true}) {
    std::string path = config ? config_file(env) : credentials_file(env);
    auto text = read_text(path);
    if (!text) continue;
    IniFile ini = parse_ini(*text);
    const auto* section = ini_profile(ini, profile, config);
    if (!section) continue;
    profile_seen = true;
    ak = value_of(section, "aws_access_key_id");
    sk = value_of(section, "aws_secret_access_key");
    if (!ak.empty() && !sk.empty())
      return Credentials{ak, sk, value_of(section, "aws_session_token"), std::nullopt,
                         "profile " + profile + " in " + path};
    std::string token_file = value_of(section, "web_identity_token_file");
    std::string role_arn = value_of(section, "role_arn");
    if (config && !token_file.empty() && !role_arn.empty())
      return web_identity(env, http, region, token_file, role_arn,
                          value_of(section, "role_session_name").empty()
                              ? "ckpt"
                              : value_of(section, "role_session_name"));
  }
  if (profile_explicit && !profile_seen)
    return Status(Errc::kPermissionDenied, "AWS profile '" + profile + "' not found in " +
                                               credentials_file(env) + " or " + config_file(env));

  // 4. Web identity (Kubernetes service accounts, EKS IRSA).
  std::string token_file = env_or(env, "AWS_WEB_IDENTITY_TOKEN_FILE");
  std::string role_arn = env_or(env, "AWS_ROLE_ARN");
  if (!token_file.empty() && !role_arn.empty())
    return web_identity(env, http, region, token_file, role_arn,
                        env_or(env, "AWS_ROLE_SESSION_NAME", "ckpt"));

  // 5. Instance metadata (IMDSv2).
  std::string disabled = env_or(env, "AWS_EC2_METADATA_DISABLED");
  if (disabled != "true" && disabled != "1") {
    auto c = imds(env, http);
    if (c.ok()) return c;
    spdlog::debug("s3: no credentials from instance metadata: {}", c.status().message());
  }
  return Status(Errc::kPermissionDenied,
                "no AWS credentials found (looked at FLYTE_AWS_ACCESS_KEY_ID, AWS_ACCESS_KEY_ID, "
                "profile '" +
                    profile + "' in " + credentials_file(env) + " and " + config_file(env) +
                    ", AWS_WEB_IDENTITY_TOKEN_FILE, instance metadata)");
}

void CredentialCache::invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  stale_ = true;
}

Result<Credentials> CredentialCache::get() {
  std::lock_guard<std::mutex> lock(mu_);
  std::time_t now = now_();
  if (cached_ && !stale_ && (!cached_->expiration || *cached_->expiration - now > margin_s_))
    return *cached_;
  auto fresh = fetch_();
  if (fresh.ok()) {
    if (fresh->expiration)
      spdlog::debug("s3: credentials from {} valid for {} s", fresh->source,
                    static_cast<long>(*fresh->expiration - now));
    cached_ = fresh.value();
    stale_ = false;
    return fresh;
  }
  if (cached_ && !stale_ && cached_->expiration && *cached_->expiration > now) {
    spdlog::debug("s3: refreshing credentials failed ({}); using the current ones",
                  fresh.status().message());
    return *cached_;
  }
  return fresh.status();
}

}  // namespace ckpt::s3
