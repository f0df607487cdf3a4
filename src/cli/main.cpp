// ckpt: save and restore checkpoints with Flyte's semantics. Parsing uses try/catch rather
// than CLI11_PARSE so that our exit codes, not CLI11's, reach the shell.
#include <cstdio>
#include <iostream>

#include "cli/common.h"

using namespace ckpt::cli;

int main(int argc, char** argv) {
  CLI::App app{"ckpt: save, restore and inspect checkpoints (Flyte intra-task checkpoint semantics)",
               "ckpt"};
  app.set_version_flag("--version", std::string("ckpt ") + CKPT_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 ok, 1 error, 2 usage error, 3 no previous checkpoint configured,\n"
      "4 previous checkpoint configured but nothing there, 5 checkpoint incomplete or corrupt,\n"
      "6 wait timed out, 7 run's final save failed (else run exits with CMD's status).\n"
      "See ckpt(1) for locations, environment variables and the on-storage layout.");
  CliContext ctx;
  add_save_command(app, ctx);
  add_restore_command(app, ctx);
  add_read_command(app, ctx);
  add_write_command(app, ctx);
  add_exists_command(app, ctx);
  add_inspect_command(app, ctx);
  add_list_command(app, ctx);
  add_prune_command(app, ctx);
  add_run_command(app, ctx);
  add_wait_command(app, ctx);
  add_status_command(app, ctx);
  add_upload_command(app, ctx);
#ifdef CKPT_WITH_TORCH
  add_encode_command(app, ctx);
  add_decode_command(app, ctx);
  add_literal_command(app, ctx);
#endif
  add_completion_command(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ckpt: usage error: %s\nRun 'ckpt --help' or 'ckpt <command> --help'.\n",
                 e.what());
    return 2;
  }
  setup_logging(ctx);
  return ctx.action ? ctx.action() : 2;
}
