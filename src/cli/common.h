// Shared by the subcommand files: options every command takes, logging, output, exit codes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "ckpt/io.h"
#include "ckpt/status.h"

namespace ckpt::cli {

struct CliContext {
  std::string dest;
  std::vector<std::string> sources;
  std::string step;   // "", a number, or "next"
  unsigned keep = 2;
  bool quiet = false;
  int verbose = 0;
  bool json = false;
  unsigned jobs = 0;
  std::string endpoint;
  std::string region;
  uint64_t part_size = 8ull << 20;
  unsigned parts_in_flight = 8;
  bool fsync = false;
  bool no_manifest = false;
  // Set by the chosen subcommand's callback; main() runs it after parsing succeeded.
  std::function<int()> action;
};

// Exit codes (documented in README and man page): the one place Errc becomes a number.
int exit_code(Errc code);

// Logs the error (one line, no internals) and returns its exit code; 0 for ok.
int finish(const Status& status, const CliContext& ctx);

// Flags every subcommand accepts: locations, verbosity, transfer knobs.
void add_common_options(CLI::App& cmd, CliContext& ctx, bool with_json);

// --fsync and --no-manifest, for the commands that write a checkpoint (save, write).
void add_write_options(CLI::App& cmd, CliContext& ctx);

// Builds the engine configuration; progress goes to a terminal bar when stderr is one.
CheckpointConfig make_config(const CliContext& ctx);

// Log level, colour (NO_COLOR) and the stderr sink, from the parsed flags.
void setup_logging(const CliContext& ctx);

void print_json(const nlohmann::json& doc);

// Subcommands, one file each.
void add_save_command(CLI::App& app, CliContext& ctx);
void add_restore_command(CLI::App& app, CliContext& ctx);
void add_read_command(CLI::App& app, CliContext& ctx);
void add_write_command(CLI::App& app, CliContext& ctx);
void add_exists_command(CLI::App& app, CliContext& ctx);
void add_inspect_command(CLI::App& app, CliContext& ctx);
void add_list_command(CLI::App& app, CliContext& ctx);   // cmd_list.cpp, with prune
void add_prune_command(CLI::App& app, CliContext& ctx);
void add_run_command(CLI::App& app, CliContext& ctx);
void add_wait_command(CLI::App& app, CliContext& ctx);  // cmd_wait.cpp, with status, __upload
void add_status_command(CLI::App& app, CliContext& ctx);
void add_upload_command(CLI::App& app, CliContext& ctx);
void add_completion_command(CLI::App& app, CliContext& ctx);  // cmd_completion.cpp
// PyTorchCheckpoint commands (src/cli/cmd_{encode,decode,literal}.cpp), built with CKPT_WITH_TORCH.
void add_encode_command(CLI::App& app, CliContext& ctx);
void add_decode_command(CLI::App& app, CliContext& ctx);
void add_literal_command(CLI::App& app, CliContext& ctx);

}  // namespace ckpt::cli
