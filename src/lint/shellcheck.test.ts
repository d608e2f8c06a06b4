import { test } from 'node:test';
import assert from 'node:assert/strict';

import { shellcheck, shellDialect, type ShellcheckOptions } from './shellcheck.js';
import { lintDockerfile } from './engine.js';
import { SHELLCHECK_RULES } from './rules/shellcheck.js';

const codes = (script: string, options: Partial<ShellcheckOptions> = {}): string[] =>
  shellcheck(script, { dialect: 'sh', ...options }).map((comment) => comment.code);
const messages = (script: string, options: Partial<ShellcheckOptions> = {}): string[] =>
  shellcheck(script, { dialect: 'sh', ...options }).map((comment) => `${comment.code} ${comment.message}`);

test('SC2086: unquoted variables that may hold spaces', () => {
  assert.deepEqual(messages('echo $MISSING'), [
    'SC2086 Double quote to prevent globbing and word splitting.',
  ]);
  assert.deepEqual(codes('echo "$MISSING" "${MISSING}"'), []);
  assert.deepEqual(codes("echo '$MISSING' \\$MISSING # $MISSING"), []);
  // Variables set before the script (ARG/ENV) and literal assignments hold no spaces.
  assert.deepEqual(codes('apt-get install -y $PACKAGES', { defined: ['PACKAGES'] }), []);
  assert.deepEqual(codes('x=1 && echo $x'), []);
  assert.deepEqual(codes('x="a b" && echo $x'), ['SC2086']);
  assert.deepEqual(codes('x=$(ls) && y=$x && echo $y'), ['SC2086']);
  assert.deepEqual(codes('for i in 1 2 3; do echo $i; done'), []);
  assert.deepEqual(codes('for f in *.txt; do rm $f; done'), ['SC2086']);
  assert.deepEqual(codes('read -r line && echo $line'), ['SC2086']);
  // Numbers, lengths and arrays expanded whole are other matters.
  assert.deepEqual(codes('echo $# $? $$ ${#PATH}', { dialect: 'bash' }), []);
  assert.deepEqual(codes('echo $RANDOM', { dialect: 'bash' }), []);
  assert.deepEqual(codes('a=(x y) && echo ${a[@]}', { dialect: 'bash' }), []);
  // Where the shell does not split words.
  assert.deepEqual(codes('v=$HOME && [[ -d $HOME ]] && case $HOME in /*) echo ok;; esac'), []);
  assert.deepEqual(codes('cat > $HOME/x <<< $HOME && export P=$HOME:$PATH && (( $OPTIND + 1 ))'), []);
  // One comment per RUN however often it applies.
  assert.deepEqual(codes('echo $A $B $C'), ['SC2086']);
  assert.deepEqual(codes('echo "$(echo $INNER)" `echo $TICK`'), ['SC2086']);
  assert.deepEqual(codes('echo ${X:+"$X"}'), []);
});

test('SC2154 and SC2153: variables never assigned', () => {
  assert.deepEqual(messages('echo "$foo"'), ['SC2154 foo is referenced but not assigned.']);
  assert.deepEqual(codes('echo "$foo"', { defined: ['foo'] }), []);
  assert.deepEqual(codes('foo=1; echo "$foo"; echo "${bar:-x}" "${baz:?}"'), []);
  assert.deepEqual(codes('read -rp "name? " name && echo "$name"'), []);
  assert.deepEqual(codes('getopts ab opt; mapfile -t lines < f; printf -v out x; echo "$opt$lines$out"'), []);
  assert.deepEqual(messages('echo "$valeu"', { defined: ['value'] }), [
    "SC2154 valeu is referenced but not assigned (did you mean 'value'?).",
  ]);
  // Upper-case names are taken as environment variables unless one close to them is assigned.
  assert.deepEqual(codes('echo "$SOME_ENV_VAR"'), []);
  assert.deepEqual(messages('echo "$RTTP_PROXY"', { defined: ['HTTP_PROXY'] }), [
    'SC2153 Possible misspelling: RTTP_PROXY may not be assigned. Did you mean HTTP_PROXY?',
  ]);
  assert.deepEqual(codes('echo "$HOME" "$PATH"', { defined: ['HOMER'] }), []);
  // Heredocs: expanded unless the delimiter is quoted; inside, nothing is split.
  assert.deepEqual(codes('cat <<EOF > /f\nhello $name\nEOF\n'), ['SC2154']);
  assert.deepEqual(codes("cat <<'EOF' > /f\nhello $name\nEOF\n"), []);
  assert.deepEqual(codes('cat <<-EOF\n\t$name\n\tEOF\necho done'), ['SC2154']);
  assert.deepEqual(codes('echo $(( $count + 1 ))'), ['SC2154']);
});

test('SC3028 and SC3046: bash-isms under sh and dash', () => {
  assert.deepEqual(messages('echo $RANDOM'), ['SC3028 In POSIX sh, RANDOM is undefined.']);
  assert.deepEqual(
    shellcheck('echo "$EUID" && source /etc/os-release', { dialect: 'dash' }).map(
      (comment) => `${comment.severity} ${comment.message}`,
    ),
    ['error In dash, EUID is not supported.', "error In dash, 'source' in place of '.' is not supported."],
  );
  assert.deepEqual(messages('source /etc/os-release'), [
    "SC3046 In POSIX sh, 'source' in place of '.' is undefined.",
  ]);
  assert.deepEqual(codes('source /etc/os-release && echo $RANDOM', { dialect: 'bash' }), []);
  assert.deepEqual(codes('RANDOM=4; echo "$RANDOM"'), []);
});

test('shell dialects: the programs ShellCheck knows', () => {
  assert.equal(shellDialect(undefined), 'sh');
  assert.equal(shellDialect('/bin/bash'), 'bash');
  assert.equal(shellDialect('/bin/ash'), 'dash');
  assert.equal(shellDialect('mksh'), 'ksh');
  assert.equal(shellDialect('pwsh'), undefined);
  assert.equal(shellDialect('C:\\Windows\\System32\\cmd.exe'), undefined);
});

const findings = (source: string): string[] =>
  lintDockerfile(source, { rules: SHELLCHECK_RULES }).findings.map(
    (finding) => `${finding.rule}:${finding.line}:${finding.severity}`,
  );

test('SC rules on RUN: shell, variables in scope, heredocs, ONBUILD, pragmas', () => {
  assert.deepEqual(findings('FROM debian:12\nRUN echo $RANDOM\n'), ['SC3028:2:warning']);
  assert.deepEqual(findings('FROM debian:12\nSHELL ["/bin/bash", "-c"]\nRUN echo $RANDOM\n'), []);
  assert.deepEqual(findings('FROM alpine:3\nSHELL ["/bin/ash", "-c"]\nRUN echo $RANDOM\n'), [
    'SC3028:3:error',
  ]);
  // The shell carries into stages built FROM this one, ARGs do not, ENV does.
  assert.deepEqual(
    findings(
      'FROM debian:12 AS base\nSHELL ["/bin/bash", "-c"]\nARG version=1\nENV home=/x\nFROM base\nRUN source /x && echo "$home$version"\n',
    ),
    ['SC2154:6:warning'],
  );
  // ONBUILD triggers run in a later build: plain sh, only the proxy variables.
  assert.deepEqual(
    findings('FROM debian:12\nSHELL ["/bin/bash", "-c"]\nARG v\nONBUILD RUN echo "$v" $RANDOM\n'),
    ['SC2154:4:warning', 'SC3028:4:warning'],
  );
  assert.deepEqual(findings('FROM debian:12\nRUN echo "$http_proxy" "$NO_PROXY"\n'), []);
  assert.deepEqual(findings('FROM debian:12\nRUN ["sh", "-c", "echo $x"]\n'), []);
  // A RUN heredoc alone is the script; with a #! line, only shells are checked.
  assert.deepEqual(findings('FROM debian:12\nRUN <<EOF\nset -e\necho $X\nEOF\n'), ['SC2086:2:info']);
  assert.deepEqual(findings('FROM debian:12\nRUN <<EOF\n#!/usr/bin/env python3\nprint($x)\nEOF\n'), []);
  assert.deepEqual(findings('FROM debian:12\nRUN <<EOF\n#!/bin/bash\necho $RANDOM\nEOF\n'), []);
  // A heredoc fed to a command is data, expanded but not split.
  assert.deepEqual(findings('FROM debian:12\nRUN cat <<EOF > /etc/x\n$HOME\nEOF\n'), []);
  assert.deepEqual(findings('FROM debian:12\n# hadolint ignore=SC2086\nRUN echo $X\n'), []);
  assert.deepEqual(
    findings('# hadolint shell=powershell\nFROM mcr.microsoft.com/windows:1\nRUN echo $x\n'),
    [],
  );
  assert.deepEqual(
    lintDockerfile('FROM debian:12\nRUN echo $X\n', { rules: SHELLCHECK_RULES }).findings[0]?.url,
    'https://www.shellcheck.net/wiki/SC2086',
  );
});
