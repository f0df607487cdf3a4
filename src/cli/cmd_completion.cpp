// `ckpt completion bash|zsh|fish`: a shell completion script, generated at run time from the
// CLI11 App tree, so it always matches the flags the binary really takes. A small model is
// built from the App (subcommands, their options and positionals, what completes a value),
// then printed by one printer per shell.
#include <cctype>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/common.h"

namespace ckpt::cli {
namespace {

const std::vector<std::string> kShells = {"bash", "zsh", "fish"};
const std::vector<std::string> kSchemes = {"s3://", "file://"};

// ---------------------------------------------------------------------------------------------
// The model.

// What completes a value (of an option or a positional).
enum class Kind {
  kText,      // free text, numbers, durations: nothing to offer
  kFile,      // local files and directories
  kDir,       // local directories
  kLocation,  // local paths and the scheme prefixes s3:// file://
  kWords,     // a fixed list (Value::words)
  kCommand,   // a command line (after `--` in `ckpt run`)
};

struct Value {
  Kind kind = Kind::kText;
  std::vector<std::string> words;
};

struct Opt {
  std::vector<std::string> names;     // "-c", "--checkpoint-path", "--dest"
  std::vector<std::string> excludes;  // names of the options it cannot be given with
  bool takes_value = false;
  bool repeatable = false;
  Value value;
  std::string label;  // what the value is, for zsh's message ("URI", "timeout")
  std::string help;
};

struct Pos {
  std::string name;  // PATH, DIR, ...
  Value value;
  bool required = false;
  bool many = false;
  std::string help;
};

struct Cmd {
  std::string name;  // "" for ckpt itself
  std::string help;
  std::vector<Opt> opts;
  std::vector<Pos> pos;
  std::vector<Cmd> subs;  // only ckpt itself has subcommands
};

// What completes the value of an option or positional, by subcommand ("" for any) and name
// (a long option without dashes, or a positional's name). First match wins; a valued option
// not listed takes free text, a positional not listed a local path.
struct Rule {
  std::string cmd, name;
  Kind kind;
  std::vector<std::string> words;  // for Kind::kWords
};
const std::vector<Rule> kRules = {
    {"", "checkpoint-path", Kind::kLocation, {}},
    {"", "dest", Kind::kLocation, {}},
    {"", "prev-checkpoint", Kind::kLocation, {}},
    {"", "src", Kind::kLocation, {}},
    {"", "step", Kind::kWords, {"next"}},  // or a number
    {"completion", "SHELL", Kind::kWords, kShells},
    {"run", "CMD", Kind::kCommand, {}},
    {"encode", "output", Kind::kLocation, {}},  // OUT, --module and --optimizer: any location
    {"encode", "module", Kind::kLocation, {}},
    {"encode", "optimizer", Kind::kLocation, {}},
    {"", "output", Kind::kFile, {}},
    {"", "html", Kind::kFile, {}},
    {"", "hparams", Kind::kFile, {}},
    {"", "output-dir", Kind::kDir, {}},
    {"", "staging", Kind::kDir, {}},
    {"", "dir", Kind::kDir, {}},
    {"", "LOCATION", Kind::kLocation, {}},
    {"", "TARGET", Kind::kLocation, {}},
    {"", "URI", Kind::kLocation, {}},
    {"", "IN", Kind::kLocation, {}},
    {"", "DIR", Kind::kDir, {}},
    {"", "PATH", Kind::kFile, {}},
    {"", "FILE", Kind::kFile, {}},
};

Value value_of(const std::string& cmd, const std::vector<std::string>& names, Kind fallback) {
  for (const auto& rule : kRules) {
    if (!rule.cmd.empty() && rule.cmd != cmd) continue;
    for (const auto& name : names) {
      if (name == rule.name) return {rule.kind, rule.words};
    }
  }
  return {fallback, {}};
}

// A help text shortened for a completion menu: without parenthetical remarks, up to the first
// "; " or ". ", at most about 80 characters.
std::string summary(const std::string& help) {
  std::string text;
  int depth = 0;
  for (size_t i = 0; i < help.size(); ++i) {
    if (help[i] == '(' && (depth > 0 || (!text.empty() && text.back() == ' ' &&
                                         help.find(')', i) != std::string::npos))) {
      if (depth++ == 0) text.pop_back();  // the space before it
    } else if (help[i] == ')' && depth > 0) {
      --depth;
    } else if (depth == 0) {
      text += help[i];
    }
  }
  for (const char* stop : {"; ", ". ", "\n"}) {
    auto at = text.find(stop);
    if (at != std::string::npos && at > 0) text.resize(at);
  }
  if (text.size() > 80) {
    auto space = text.rfind(' ', 76);
    text.resize(space == std::string::npos ? 76 : space);
    text += "...";
  }
  return text;
}

Cmd model_of(const CLI::App& app, const std::string& name) {
  Cmd cmd;
  cmd.name = name;
  cmd.help = summary(app.get_description());
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_group().empty()) continue;  // hidden
    if (o->get_positional() && !o->nonpositional()) {
      Pos p;
      p.name = o->get_name();
      p.value = value_of(name, {p.name}, Kind::kFile);
      p.required = o->get_required();
      p.many = o->get_items_expected_max() > 1;
      p.help = summary(o->get_description());
      cmd.pos.push_back(p);
      continue;
    }
    Opt opt;
    for (const auto& s : o->get_snames()) opt.names.push_back("-" + s);
    for (const auto& l : o->get_lnames()) opt.names.push_back("--" + l);
    opt.takes_value = o->get_items_expected_max() > 0;  // flags expect 0 items
    opt.repeatable = o->get_items_expected_max() > 1 ||
                     o->get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll;
    opt.value = value_of(name, o->get_lnames(), Kind::kText);
    if (!opt.takes_value) opt.value = {};
    opt.label = opt.value.kind == Kind::kLocation ? "URI"
                : o->get_lnames().empty()         ? o->get_name()
                                                  : o->get_lnames().front();
    opt.help = summary(o->get_description());
    for (const CLI::Option* x : o->get_excludes()) {
      for (const auto& s : x->get_snames()) opt.excludes.push_back("-" + s);
      for (const auto& l : x->get_lnames()) opt.excludes.push_back("--" + l);
    }
    cmd.opts.push_back(opt);
  }
  return cmd;
}

// ckpt and its subcommands; hidden subcommands (group "") are left out.
Cmd build_model(const CLI::App& app) {
  Cmd root = model_of(app, "");
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_group().empty()) continue;
    root.subs.push_back(model_of(*sub, sub->get_name()));
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// Shared by the printers.

// 'text' for sh-like shells (bash, zsh).
std::string sq(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

// A name usable in a shell function name.
std::string ident(const std::string& name) {
  std::string out;
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

const char* kGenerated = "generated by `ckpt completion %s` from the command line of\n"
                         "# ckpt " CKPT_VERSION " itself; regenerate it after upgrading ckpt.";

std::string header(const char* shell) {
  char buf[256];
  std::snprintf(buf, sizeof buf, kGenerated, shell);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// bash: the model becomes one `case` (_ckpt_spec); a fixed engine (_ckpt) walks the words.

std::string bash_kind(const Value& v) {
  switch (v.kind) {
    case Kind::kText: return "text";
    case Kind::kFile: return "file";
    case Kind::kDir: return "dir";
    case Kind::kLocation: return "location";
    case Kind::kWords: return "words:" + join(v.words, " ");
    case Kind::kCommand: return "command";
  }
  return "text";
}

// "      NAME=(ITEMS)", wrapped at about 100 columns.
std::string bash_array(const std::string& name, const std::vector<std::string>& items) {
  std::string out = "      " + name + "=(";
  size_t column = out.size();
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0 && column + 1 + items[i].size() > 99) {
      out += "\n        ";
      column = 8;
    } else if (i > 0) {
      out += ' ';
      ++column;
    }
    out += items[i];
    column += items[i].size();
  }
  return out + ")\n";
}

void bash_spec(std::ostream& out, const Cmd& cmd) {
  std::vector<std::string> flags, valued, positionals, subs;
  for (const auto& o : cmd.opts) {
    for (const auto& n : o.names) {
      if (o.takes_value) {
        valued.push_back(sq(n + "=" + bash_kind(o.value)));
      } else {
        flags.push_back(n);
      }
    }
  }
  for (const auto& p : cmd.pos) positionals.push_back(sq(bash_kind(p.value) + (p.many ? "+" : "")));
  for (const auto& s : cmd.subs) subs.push_back(s.name);
  out << "    " << (cmd.name.empty() ? "''" : cmd.name) << ")\n"
      << bash_array("flags", flags) << bash_array("valued", valued)
      << bash_array("positionals", positionals) << bash_array("commands", subs) << "      ;;\n";
}

const char* kBashEngine = R"BASH(
# _ckpt_values KIND CUR: fills cands with what completes CUR for a value of KIND; files=1 when
# they are local paths bash should quote and mark as directories itself.
_ckpt_values() {
  local kind=$1 cur=$2 f
  case $kind in
    file) mapfile -t cands < <(compgen -f -- "$cur") && files=1 ;;
    dir) mapfile -t cands < <(compgen -d -- "$cur") && files=1 ;;
    location)
      if [[ $cur == file://* ]]; then
        while IFS= read -r f; do
          [[ -d $f ]] && f+=/
          cands+=("file://$f")
        done < <(compgen -f -- "${cur#file://}")
        return
      fi
      mapfile -t cands < <(compgen -W "@SCHEMES@" -- "$cur")
      if ((${#cands[@]} == 0)); then
        mapfile -t cands < <(compgen -f -- "$cur") && files=1
      elif [[ $cur != s3:* ]]; then
        while IFS= read -r f; do
          [[ -d $f ]] && f+=/
          cands+=("$f")
        done < <(compgen -f -- "$cur")
      fi
      ;;
    words:*) mapfile -t cands < <(compgen -W "${kind#words:}" -- "$cur") ;;
    command) mapfile -t cands < <(compgen -c -- "$cur") ;;
  esac
}

_ckpt() {
  local words=() n=0 i w
  # The words up to the cursor, rejoining what bash split at COMP_WORDBREAKS: COMP_WORDS holds
  # s3://b as "s3" ":" "//b" and --dest=x as "--dest" "=" "x".
  if [[ -n ${COMP_LINE-} ]]; then
    local line=${COMP_LINE:0:${COMP_POINT:-${#COMP_LINE}}} rest
    for ((i = 0; i <= COMP_CWORD && i < ${#COMP_WORDS[@]}; i++)); do
      w=${COMP_WORDS[i]}
      rest=${line#"${line%%[![:space:]]*}"}
      if ((i > 0 && n > 0 && ${#rest} == ${#line})); then
        ((n--))   # no blank before this word: part of the previous one
      else
        words[n]=""
      fi
      if [[ $rest == "$w"* ]]; then
        words[n]+=$w line=${rest:${#w}}
      else
        words[n]+=$rest line=""
      fi
      ((n++))
    done
  else
    words=("${COMP_WORDS[@]:0:COMP_CWORD+1}") n=$((COMP_CWORD + 1))
  fi
  local cur=${words[n-1]} flags valued positionals commands cmd="" npos=0 dashdash=0 expect=""
  _ckpt_spec ''
  for ((i = 1; i < n - 1; i++)); do
    w=${words[i]}
    if [[ -n $expect ]]; then
      expect=""
    elif ((dashdash)); then
      ((npos++))
    elif [[ $w == -- ]]; then
      dashdash=$i
    elif [[ $w == -?* && $w != *=* ]]; then
      expect=$(_ckpt_valued "$w")
    elif [[ $w != -* && -z $cmd && ${#commands[@]} -gt 0 ]]; then
      cmd=$w
      _ckpt_spec "$cmd" || return 0
    elif [[ $w != -* ]]; then
      ((npos++))
    fi
  done

  local kind="" prefix="" cands=() files=0
  if [[ -n $expect ]]; then
    kind=$expect
  elif ((!dashdash)) && [[ $cur == --*=* ]]; then
    kind=$(_ckpt_valued "${cur%%=*}") prefix=${cur%%=*}= cur=${cur#*=}
  elif ((!dashdash)) && [[ $cur == -* ]]; then
    kind="words:${flags[*]} ${valued[*]%%=*}"
  elif [[ -z $cmd && ${#commands[@]} -gt 0 ]]; then
    kind="words:${commands[*]}"
  elif ((${#positionals[@]})); then
    i=$npos
    ((i >= ${#positionals[@]})) && i=$((${#positionals[@]} - 1))
    kind=${positionals[i]}
    [[ $npos -ge ${#positionals[@]} && $kind != *+ ]] && kind=""
    kind=${kind%+}
  fi
  if [[ $kind == command ]]; then
    if ((!dashdash)); then
      kind="words:--"   # ckpt run needs -- before the command
    elif ((npos > 0)); then
      # An argument of the command: its own completion when bash-completion is loaded.
      if declare -F _command_offset >/dev/null; then
        for ((i = 1; i < COMP_CWORD; i++)); do
          [[ ${COMP_WORDS[i]} == -- ]] && break
        done
        _command_offset $((i + 1))
        return
      fi
      kind="file"
    fi
  fi
  _ckpt_values "$kind" "$cur"

  # Readline replaces only the text after the last COMP_WORDBREAKS character of the word.
  local keep=$prefix$cur c
  for ((i = ${#keep} - 1; i >= 0; i--)); do
    c=${keep:i:1}
    [[ $c != [[:space:]] && ${COMP_WORDBREAKS-} == *"$c"* ]] && break
  done
  keep=${keep:0:i+1}
  COMPREPLY=()
  for w in "${cands[@]}"; do
    w=$prefix$w
    COMPREPLY+=("${w#"$keep"}")
  done
  if ((files)); then
    compopt -o filenames 2>/dev/null
  else
    for w in "${COMPREPLY[@]}"; do
      [[ $w == */ ]] && { compopt -o nospace 2>/dev/null; break; }
    done
  fi
  return 0
}

# _ckpt_valued OPTION: prints the KIND of OPTION's value; nothing for a flag.
_ckpt_valued() {
  local v
  for v in "${valued[@]}"; do
    [[ ${v%%=*} == "$1" ]] && { printf '%s\n' "${v#*=}"; return; }
  done
}

complete -F _ckpt ckpt
)BASH";

void print_bash(std::ostream& out, const Cmd& root) {
  out << "# bash completion for ckpt, " << header("bash") << "\n"
      << "# Load it with: source <(ckpt completion bash)\n"
      << "# or install it: ckpt completion bash > /usr/share/bash-completion/completions/ckpt\n\n"
      << "# _ckpt_spec CMD: what CMD ('' for ckpt itself) takes. flags: options without a value;\n"
      << "# valued: OPTION=KIND; positionals: KIND of each, + when it repeats; commands: its\n"
      << "# subcommands. KIND: text, file, dir, location, command or words:LIST.\n"
      << "_ckpt_spec() {\n  case $1 in\n";
  bash_spec(out, root);
  for (const auto& sub : root.subs) bash_spec(out, sub);
  std::string engine = kBashEngine;
  engine.replace(engine.find("@SCHEMES@"), 9, join(kSchemes, " "));
  out << "    *) return 1 ;;\n  esac\n}\n" << engine;
}

// ---------------------------------------------------------------------------------------------
// zsh: one _arguments call per subcommand.

// Text inside an _arguments [description] or a _describe item.
std::string zsh_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '[' || c == ']' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string zsh_action(const Value& v) {
  switch (v.kind) {
    case Kind::kText: return " ";
    case Kind::kFile: return "_files";
    case Kind::kDir: return "_files -/";
    case Kind::kLocation: return "_ckpt_location";
    case Kind::kWords: return "(" + join(v.words, " ") + ")";
    case Kind::kCommand: return "_normal";
  }
  return " ";
}

std::vector<std::string> zsh_specs(const Cmd& cmd) {
  std::vector<std::string> specs;
  for (const auto& o : cmd.opts) {
    // Options that cannot follow this one: itself (unless repeatable) and what it excludes.
    std::vector<std::string> after = o.repeatable ? std::vector<std::string>{} : o.names;
    after.insert(after.end(), o.excludes.begin(), o.excludes.end());
    std::string exclusion = after.empty() ? "" : "(" + join(after, " ") + ")";
    if (o.repeatable) exclusion += "*";
    for (const auto& n : o.names) {
      std::string spec = exclusion + n;
      if (o.takes_value) spec += n.size() == 2 ? "+" : "=";
      spec += "[" + zsh_escape(o.help) + "]";
      if (o.takes_value) spec += ":" + zsh_escape(o.label) + ":" + zsh_action(o.value);
      specs.push_back(spec);
    }
  }
  for (const auto& p : cmd.pos) {
    if (p.value.kind == Kind::kCommand) continue;  // handled before _arguments, after --
    std::string spec = p.many ? "*" : "";
    spec += p.required || p.many ? ":" : "::";
    spec += zsh_escape(p.name) + ":" + zsh_action(p.value);
    specs.push_back(spec);
  }
  return specs;
}

void print_zsh(std::ostream& out, const Cmd& root) {
  out << "#compdef ckpt\n"
      << "# zsh completion for ckpt, " << header("zsh") << "\n"
      << "# Load it with: source <(ckpt completion zsh)   (after compinit)\n"
      << "# or install it as _ckpt in a directory of $fpath:\n"
      << "#   ckpt completion zsh > ~/.zfunc/_ckpt\n"
      << "# with fpath=(~/.zfunc $fpath) before compinit.\n\n"
      << "_ckpt_location() {\n"
      << "  _alternative 'schemes:scheme:compadd -S \"\" " << join(kSchemes, " ")
      << "' 'files:file:_files'\n}\n\n"
      << "_ckpt_commands() {\n  local -a commands=(\n";
  for (const auto& sub : root.subs) {
    out << "    " << sq(zsh_escape(sub.name) + ":" + zsh_escape(sub.help)) << "\n";
  }
  out << "  )\n  _describe -t commands 'ckpt command' commands\n}\n";
  for (const auto& sub : root.subs) {
    out << "\n_ckpt_" << ident(sub.name) << "() {\n";
    for (const auto& p : sub.pos) {
      if (p.value.kind != Kind::kCommand) continue;
      out << "  # After --: the command and its arguments, completed as a command line.\n"
          << "  local dashdash=${words[(i)--]}\n"
          << "  if (( dashdash < CURRENT )); then\n"
          << "    shift $dashdash words\n"
          << "    (( CURRENT -= dashdash ))\n"
          << "    _normal\n"
          << "    return\n"
          << "  fi\n";
      break;
    }
    out << "  _arguments -s -S";
    for (const auto& spec : zsh_specs(sub)) out << " \\\n    " << sq(spec);
    out << "\n}\n";
  }
  out << "\n_ckpt() {\n"
      << "  local curcontext=$curcontext state line ret=1\n"
      << "  _arguments -s -C";
  for (const auto& spec : zsh_specs(root)) out << " \\\n    " << sq(spec);
  out << " \\\n    '1:command:_ckpt_commands' \\\n    '*::argument:->argument' && ret=0\n"
      << "  if [[ $state == argument ]]; then\n"
      << "    curcontext=${curcontext%:*:*}:ckpt-$words[1]:\n"
      << "    case $words[1] in\n";
  for (const auto& sub : root.subs) {
    out << "      " << sub.name << ") _ckpt_" << ident(sub.name) << " && ret=0 ;;\n";
  }
  out << "    esac\n  fi\n  return ret\n}\n\n"
      << "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n"
      << "  _ckpt \"$@\"\n"
      << "else\n"
      << "  compdef _ckpt ckpt\n"
      << "fi\n";
}

// ---------------------------------------------------------------------------------------------
// fish: one `complete` line per option, positional and subcommand.

std::string fish_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// The arguments of `complete` that complete a value of kind V.
std::string fish_value(const Value& v) {
  switch (v.kind) {
    case Kind::kText: return "";
    case Kind::kFile: return " -F";
    case Kind::kDir: return " -a '(__fish_complete_directories (__ckpt_token))'";
    case Kind::kLocation: return " -a '(__ckpt_locations)'";
    case Kind::kWords: return " -a " + fish_quote(join(v.words, " "));
    case Kind::kCommand: return " -a '(__ckpt_command_line)'";
  }
  return "";
}

void print_fish(std::ostream& out, const Cmd& root) {
  std::vector<std::string> top_valued;
  for (const auto& o : root.opts) {
    if (o.takes_value) top_valued.insert(top_valued.end(), o.names.begin(), o.names.end());
  }
  out << "# fish completion for ckpt, " << header("fish") << "\n"
      << "# Load it with: ckpt completion fish | source\n"
      << "# or install it: ckpt completion fish > ~/.config/fish/completions/ckpt.fish\n\n"
      << "# The subcommand on the command line, if there is one yet.\n"
      << "function __ckpt_subcommand\n"
      << "    set -l skip 0\n"
      << "    for t in (commandline -opc)[2..-1]\n"
      << "        if test $skip = 1\n"
      << "            set skip 0\n"
      << (top_valued.empty() ? ""
                             : "        else if contains -- $t " + join(top_valued, " ") + "\n" +
                                   "            set skip 1\n")
      << "        else if not string match -q -- '-*' $t\n"
      << "            echo $t\n"
      << "            return 0\n"
      << "        end\n"
      << "    end\n"
      << "    return 1\n"
      << "end\n\n"
      << "function __ckpt_needs_subcommand\n"
      << "    not __ckpt_subcommand >/dev/null\n"
      << "end\n\n"
      << "# __ckpt_using CMD [after]: CMD is the subcommand; with `after`, only after --, without\n"
      << "# it only before.\n"
      << "function __ckpt_using\n"
      << "    set -l sub (__ckpt_subcommand)\n"
      << "    test \"$sub\" = $argv[1]; or return 1\n"
      << "    if contains -- -- (commandline -opc)\n"
      << "        test (count $argv) -gt 1\n"
      << "    else\n"
      << "        test (count $argv) -eq 1\n"
      << "    end\n"
      << "end\n\n"
      << "# The token being completed, without an --option= before it.\n"
      << "function __ckpt_token\n"
      << "    string replace -r -- '^--?[^=]*=' '' (commandline -ct)\n"
      << "end\n\n"
      << "function __ckpt_locations\n"
      << "    printf '%s\\tscheme\\n' " << join(kSchemes, " ") << "\n"
      << "    __fish_complete_path (__ckpt_token)\n"
      << "end\n\n"
      << "# After --: what the command line from there would complete.\n"
      << "function __ckpt_command_line\n"
      << "    set -l tokens (commandline -opc) (commandline -ct)\n"
      << "    set -l at (contains -i -- -- $tokens)\n"
      << "    __fish_complete_subcommand --commandline $tokens[(math $at + 1)..-1]\n"
      << "end\n\n"
      << "complete -c ckpt -f\n";
  auto print_opts = [&out](const Cmd& cmd, const std::string& cond) {
    for (const auto& o : cmd.opts) {
      out << "complete -c ckpt -n " << fish_quote(cond);
      for (const auto& n : o.names) {
        out << (n.size() == 2 ? " -s " : " -l ") << n.substr(n.size() == 2 ? 1 : 2);
      }
      if (o.takes_value) {
        // -r: takes a value; -f: no file names unless the value is a file (-F).
        out << " -r" << (o.value.kind == Kind::kFile ? "" : " -f") << fish_value(o.value);
      }
      out << " -d " << fish_quote(o.help) << "\n";
    }
  };
  print_opts(root, "__ckpt_needs_subcommand");
  for (const auto& sub : root.subs) {
    out << "complete -c ckpt -n __ckpt_needs_subcommand -a " << fish_quote(sub.name) << " -d "
        << fish_quote(sub.help) << "\n";
  }
  for (const auto& sub : root.subs) {
    out << "\n# ckpt " << sub.name << "\n";
    std::string cond = "__ckpt_using " + sub.name;
    print_opts(sub, cond);
    for (const auto& p : sub.pos) {
      if (p.value.kind == Kind::kText) continue;
      std::string when = p.value.kind == Kind::kCommand ? cond + " after" : cond;
      out << "complete -c ckpt -n " << fish_quote(when) << fish_value(p.value) << "\n";
    }
  }
}

}  // namespace

void add_completion_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "completion", "Print a completion script for SHELL (bash, zsh or fish) on stdout");
  static std::string shell;
  cmd->add_option("SHELL", shell, "bash, zsh or fish")->required();
  cmd->footer(
      "Examples:\n"
      "  source <(ckpt completion bash)   # this bash (zsh: the same, after compinit)\n"
      "  ckpt completion fish | source    # this fish\n"
      "  ckpt completion bash > /usr/share/bash-completion/completions/ckpt   # every bash");
  const CLI::App& root = app;
  cmd->callback([&root, &ctx] {
    ctx.action = [&root] {
      std::ostringstream out;
      if (shell == "bash") {
        print_bash(out, build_model(root));
      } else if (shell == "zsh") {
        print_zsh(out, build_model(root));
      } else if (shell == "fish") {
        print_fish(out, build_model(root));
      } else {
        std::fprintf(stderr, "ckpt: usage error: unknown shell '%s' (supported: %s)\n",
                     shell.c_str(), join(kShells, ", ").c_str());
        return 2;
      }
      std::cout << out.str() << std::flush;
      return std::cout ? 0 : 1;
    };
  });
}

}  // namespace ckpt::cli
