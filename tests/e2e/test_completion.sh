#!/usr/bin/env bash
# `ckpt completion bash|zsh|fish`: the scripts load in their shells and complete what the
# binary really takes (subcommands from `ckpt --help`, options from `ckpt CMD --help`).
. "$(dirname "$0")/lib.sh"

command -v zsh >/dev/null || fail "zsh is needed (scripts/setup.sh --test installs it)"
command -v fish >/dev/null || fail "fish is needed (scripts/setup.sh --test installs it)"

# A working directory with known names for path completion.
mkdir -p "$TMP/w/sdir" "$TMP/w/sub" "$TMP/home"
touch "$TMP/w/sfile"
export HOME=$TMP/home XDG_CONFIG_HOME=$TMP/home/.config XDG_DATA_HOME=$TMP/home/.local/share

# The subcommands `ckpt --help` lists, one per line, sorted.
"$CKPT" --help | awk '/^Subcommands:/ { on = 1; next } on && /^  [^ ]/ { print $1 } on && /^$/ { exit }' |
  LC_ALL=C sort >"$TMP/help_cmds"
[ "$(wc -l <"$TMP/help_cmds")" -ge 10 ] || fail "could not read the subcommands of ckpt --help"
grep -qx completion "$TMP/help_cmds" || fail "completion is not listed in ckpt --help"

# ---------------------------------------------------------------------------------------------
# bash
ck 0 completion bash
cp "$TMP/out" "$TMP/ckpt.bash"
bash -n "$TMP/ckpt.bash" || fail "bash: syntax error in the script"

# bcomp LINE: the completions bash offers with the cursor at the end of LINE, one per line.
# Sets COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT as bash does (words split at blanks
# and at the COMP_WORDBREAKS characters ':' and '=', which become words of their own) and calls
# the function that `complete -p ckpt` names.
bcomp() {
  (cd "$TMP/w" && bash --norc --noprofile -c '
    source "$1" || exit 1
    fn=$(complete -p ckpt | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
    [ -n "$fn" ] || { echo "no completion function registered for ckpt" >&2; exit 1; }
    line=$2 words=()
    read -ra blanks <<<"$line"
    for tok in "${blanks[@]}"; do
      while [[ $tok =~ ^([^:=]*)([:=]+)(.*)$ ]]; do
        [[ -n ${BASH_REMATCH[1]} ]] && words+=("${BASH_REMATCH[1]}")
        words+=("${BASH_REMATCH[2]}")
        tok=${BASH_REMATCH[3]}
      done
      [[ -n $tok ]] && words+=("$tok")
    done
    [[ $line == *" " ]] && words+=("")
    COMP_WORDS=("${words[@]}") COMP_CWORD=$((${#words[@]} - 1)) COMP_LINE=$line COMP_POINT=${#line}
    COMPREPLY=()
    "$fn" ckpt "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    ((${#COMPREPLY[@]})) && printf "%s\n" "${COMPREPLY[@]}"
    exit 0' bcomp "$TMP/ckpt.bash" "$1") >"$TMP/out" 2>"$TMP/err" || fail "bash: completing '$1' failed"
}
# offers FILE WORD...: each WORD is a line of FILE.
offers() {
  local file=$1 w
  shift
  for w in "$@"; do
    grep -qxF -- "$w" "$file" || fail "'$w' not offered; got: $(tr '\n' ' ' <"$file")"
  done
}
not_offers() {
  local file=$1 w
  shift
  for w in "$@"; do
    ! grep -qxF -- "$w" "$file" || fail "'$w' offered; got: $(tr '\n' ' ' <"$file")"
  done
}
exactly() {  # FILE WORD...: FILE holds these lines, in any order
  if [ $# -gt 1 ]; then printf '%s\n' "${@:2}"; fi | LC_ALL=C sort >"$TMP/want"
  LC_ALL=C sort "$1" | diff "$TMP/want" - >/dev/null ||
    fail "expected: ${*:2}; got: $(tr '\n' ' ' <"$1")"
}

bcomp "ckpt sa"
exactly "$TMP/out" save
bcomp "ckpt save --st"
exactly "$TMP/out" --staging --step
bcomp "ckpt restore --prev-checkpoint s"
offers "$TMP/out" s3:// sdir/ sfile
not_offers "$TMP/out" file://
bcomp "ckpt restore --prev-checkpoint "
offers "$TMP/out" s3:// file://
bcomp "ckpt restore --src=s"        # the value of --opt=, after the '=' bash keeps
offers "$TMP/out" s3://
bcomp "ckpt list s3:"               # bash keeps "s3:", so the rest is offered
exactly "$TMP/out" //
bcomp "ckpt wait --"
offers "$TMP/out" --timeout --help --checkpoint-path --prev-checkpoint --step
bcomp "ckpt save --step "
exactly "$TMP/out" next
bcomp "ckpt save -j "               # a number: nothing to offer
exactly "$TMP/out"
bcomp "ckpt save s"
exactly "$TMP/out" sdir sfile sub
bcomp "ckpt restore "               # DIR: directories only
exactly "$TMP/out" sdir sub
bcomp "ckpt read --output sf"
exactly "$TMP/out" sfile
bcomp "ckpt run --dir s"
exactly "$TMP/out" sdir sub
bcomp "ckpt run --dir sdir "        # the command goes after --
exactly "$TMP/out" --
bcomp "ckpt run --dir sdir -- ech"
offers "$TMP/out" echo
bcomp "ckpt completion "
exactly "$TMP/out" bash zsh fish
bcomp "ckpt __"
exactly "$TMP/out"
bcomp "ckpt __upload "
exactly "$TMP/out"
bcomp "ckpt -"
offers "$TMP/out" --help --version

# Every subcommand of `ckpt --help`, nothing else (so no hidden one), and each with every long
# option its own --help lists.
bcomp "ckpt "
LC_ALL=C sort "$TMP/out" | diff "$TMP/help_cmds" - >"$TMP/diff" ||
  fail "bash: 'ckpt <TAB>' differs from ckpt --help: $(cat "$TMP/diff")"
while read -r cmd; do
  "$CKPT" "$cmd" --help | awk '/^  -/ { print $1 }' | grep -oE -- '--[a-z][a-z0-9-]*' |
    LC_ALL=C sort -u >"$TMP/help_opts"
  [ -s "$TMP/help_opts" ] || fail "no options in ckpt $cmd --help"
  bcomp "ckpt $cmd --"
  LC_ALL=C sort -u "$TMP/out" | diff "$TMP/help_opts" - >"$TMP/diff" ||
    fail "bash: 'ckpt $cmd --<TAB>' differs from ckpt $cmd --help: $(cat "$TMP/diff")"
done <"$TMP/help_cmds"

# ---------------------------------------------------------------------------------------------
# zsh: syntax, loads with compinit both sourced and from $fpath.
ck 0 completion zsh
mkdir -p "$TMP/zfunc"
cp "$TMP/out" "$TMP/zfunc/_ckpt"
zsh -n "$TMP/zfunc/_ckpt" || fail "zsh: syntax error in the script"
run 0 zsh -f -c '
  autoload -U compinit && compinit -u -d "$1/zcompdump1"
  source "$1/zfunc/_ckpt"
  (( $+functions[_ckpt] )) || { echo "_ckpt is not defined"; exit 1; }
  (( $+functions[_ckpt_save] )) || { echo "_ckpt_save is not defined"; exit 1; }
  (( $+functions[_ckpt___upload] )) && { echo "hidden __upload has a function"; exit 1; }
  [[ $_comps[ckpt] == _ckpt ]] || { echo "ckpt is not bound to _ckpt: $_comps[ckpt]"; exit 1; }
  echo ok' zsh "$TMP"
assert_contains "$TMP/out" ok
run 0 zsh -f -c '
  fpath=("$1/zfunc" $fpath)
  autoload -U compinit && compinit -u -d "$1/zcompdump2"
  [[ $_comps[ckpt] == _ckpt ]] || { echo "#compdef did not bind ckpt: $_comps[ckpt]"; exit 1; }
  echo ok' zsh "$TMP"
assert_contains "$TMP/out" ok
assert_not_contains "$TMP/zfunc/_ckpt" "__upload"

# ---------------------------------------------------------------------------------------------
# fish: syntax, and `complete -C` after sourcing it.
ck 0 completion fish
cp "$TMP/out" "$TMP/ckpt.fish"
fish -n "$TMP/ckpt.fish" || fail "fish: syntax error in the script"
fcomp() {  # LINE: what fish offers (candidates only, no descriptions)
  (cd "$TMP/w" && fish -c 'source $argv[1]; or exit 1; complete -C $argv[2]' "$TMP/ckpt.fish" "$1" \
    2>"$TMP/err") | cut -f1 >"$TMP/out" || fail "fish: completing '$1' failed"
}
fcomp "ckpt sa"
exactly "$TMP/out" save
fcomp "ckpt save --st"
exactly "$TMP/out" --staging --step
fcomp "ckpt restore --prev-checkpoint s"
offers "$TMP/out" s3:// sdir/ sfile
fcomp "ckpt wait --t"
exactly "$TMP/out" --timeout
fcomp "ckpt completion "
exactly "$TMP/out" bash zsh fish
fcomp "ckpt restore "
exactly "$TMP/out" sdir/ sub/
fcomp "ckpt __"
exactly "$TMP/out"
fcomp "ckpt "
LC_ALL=C sort "$TMP/out" | diff "$TMP/help_cmds" - >"$TMP/diff" ||
  fail "fish: 'ckpt <TAB>' differs from ckpt --help: $(cat "$TMP/diff")"

# ---------------------------------------------------------------------------------------------
# Usage errors.
ck 2 completion tcsh
assert_contains "$TMP/err" "unknown shell 'tcsh'"
assert_contains "$TMP/err" "bash, zsh, fish"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "more than one line for an unknown shell"
[ ! -s "$TMP/out" ] || fail "a script was printed for an unknown shell"
ck 2 completion
echo "ok"
