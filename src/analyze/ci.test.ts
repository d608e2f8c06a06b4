import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  evaluateCi,
  goFloat,
  loadCiRules,
  parseCiConfig,
  parseCiRule,
  parseHumanBytes,
  type CiRules,
} from './ci.js';
import type { ImageAnalysis } from './model.js';
import { formatCiReport, humanizeBytes } from './report.js';

function rules(
  values: Partial<Record<'lowestEfficiency' | 'highestWastedBytes' | 'highestUserWastedPercent', string>>,
): CiRules {
  return {
    lowestEfficiency: parseCiRule('lowestEfficiency', values.lowestEfficiency ?? '0.9'),
    highestWastedBytes: parseCiRule('highestWastedBytes', values.highestWastedBytes ?? 'disabled'),
    highestUserWastedPercent: parseCiRule(
      'highestUserWastedPercent',
      values.highestUserWastedPercent ?? '0.1',
    ),
  };
}

/** Only what the CI rules and report read. */
function analysis(
  dive: Partial<ImageAnalysis['dive']>,
  strata: Partial<ImageAnalysis['strata']> = {},
): ImageAnalysis {
  return {
    image: {
      reference: 'app:1',
      source: 'store',
      names: [],
      id: 'sha256:00',
      manifestDigest: 'sha256:00',
      platform: 'linux/amd64',
      created: undefined,
    },
    layers: [],
    sizeBytes: 0,
    dive: {
      efficiency: 1,
      wastedBytes: 0,
      userSizeBytes: 0,
      userWastedPercent: 0,
      inefficientFiles: [],
      scanStoppedLayers: [],
      ...dive,
    },
    strata: {
      efficiency: 1,
      wastedBytes: 0,
      finalSizeBytes: 0,
      baseLayers: 1,
      userSizeBytes: 0,
      userWastedBytes: 0,
      userWastedPercent: 0,
      inefficientFiles: [],
      ...strata,
    },
  };
}

describe('parseHumanBytes (go-humanize ParseBytes)', () => {
  it('reads SI and IEC units, case-insensitively, with or without a space', () => {
    assert.equal(parseHumanBytes('20MB'), 20_000_000);
    assert.equal(parseHumanBytes('20MiB'), 20_971_520);
    assert.equal(parseHumanBytes('20 mb'), 20_000_000);
    assert.equal(parseHumanBytes('1.5GiB'), 1_610_612_736);
    assert.equal(parseHumanBytes('5k'), 5000);
    assert.equal(parseHumanBytes('5Ki'), 5120);
    assert.equal(parseHumanBytes('1,000,000'), 1_000_000);
    assert.equal(parseHumanBytes('12'), 12);
    assert.equal(parseHumanBytes('12B'), 12);
    assert.equal(parseHumanBytes('0.5kB'), 500);
    assert.equal(parseHumanBytes('1.0001kB'), 1000, 'fractions of a byte are truncated');
  });

  it('refuses what is not a byte count', () => {
    assert.throws(() => parseHumanBytes('lots'), /is not a byte count/);
    assert.throws(() => parseHumanBytes('-5MB'), /is not a byte count/);
    assert.throws(() => parseHumanBytes('5 parsecs'), /unknown unit "parsecs"/);
    assert.throws(() => parseHumanBytes('1.2.3MB'), /is not a byte count/);
  });
});

describe('CI rules', () => {
  it("has dive's defaults and its ways of disabling a rule", () => {
    assert.deepEqual(rules({}), {
      lowestEfficiency: { name: 'lowestEfficiency', threshold: 0.9 },
      highestWastedBytes: { name: 'highestWastedBytes', threshold: undefined },
      highestUserWastedPercent: { name: 'highestUserWastedPercent', threshold: 0.1 },
    });
    for (const off of ['', 'disabled', 'OFF', 'false', ' Disabled ', null, false]) {
      assert.equal(parseCiRule('lowestEfficiency', off).threshold, undefined, String(off));
    }
    assert.equal(parseCiRule('lowestEfficiency', 0.95).threshold, 0.95);
    assert.equal(parseCiRule('highestWastedBytes', 20_000_000).threshold, 20_000_000);
  });

  it('refuses ratios outside 0–1 and values of the wrong kind, naming the setting', () => {
    assert.throws(() => parseCiRule('lowestEfficiency', '1.5', '.dive-ci: lowestEfficiency'), {
      message:
        '.dive-ci: lowestEfficiency: invalid value "1.5": expected a ratio between 0 and 1 (or "disabled")',
    });
    assert.throws(() => parseCiRule('highestUserWastedPercent', 'ten'), /invalid value "ten"/);
    assert.throws(
      () => parseCiRule('highestWastedBytes', '20 parsecs'),
      /highestWastedBytes: "20 parsecs": unknown unit/,
    );
    assert.throws(() => parseCiRule('lowestEfficiency', [0.9]), /expected a ratio between 0 and 1/);
    assert.throws(() => parseCiRule('lowestEfficiency', true), /expected a ratio/);
  });

  it('reads .dive-ci files: rules: in camelCase (dive ≤ 0.12) or top-level kebab-case (dive 0.13)', () => {
    const classic = parseCiConfig(
      'rules:\n  lowestEfficiency: 0.95\n  highestWastedBytes: 20MB\n  highestUserWastedPercent: 0.20\n',
      '.dive-ci',
    );
    assert.deepEqual(classic, {
      values: { lowestEfficiency: 0.95, highestWastedBytes: '20MB', highestUserWastedPercent: 0.2 },
      warnings: [],
    });
    const kebab = parseCiConfig(
      'lowest-efficiency-threshold: "0.8"\nhighest-wasted-bytes: disabled\n',
      'ci.yaml',
    );
    assert.deepEqual(kebab.values, { lowestEfficiency: '0.8', highestWastedBytes: 'disabled' });
    const both = parseCiConfig('lowest-efficiency: 0.1\nrules:\n  lowest-efficiency: 0.2\n', 'x');
    assert.equal(both.values.lowestEfficiency, 0.2, 'rules: wins');
    assert.deepEqual(parseCiConfig('', 'empty'), { values: {}, warnings: [] });
    assert.deepEqual(parseCiConfig('rules:\n  lowestEfficency: 0.9\n', '.dive-ci').warnings, [
      '.dive-ci: unknown setting "rules.lowestEfficency" ignored',
    ]);
  });

  it('rejects a broken .dive-ci with one line naming the file', () => {
    assert.throws(
      () => parseCiConfig('rules:\n  lowestEfficiency: [0.9\n', '.dive-ci'),
      /^StrataError: \.dive-ci:\d+: invalid YAML: /,
    );
    assert.throws(() => parseCiConfig('- 0.9\n', '.dive-ci'), {
      message: '.dive-ci: expected a mapping with "rules:"',
    });
    assert.throws(() => parseCiConfig('rules: 0.9\n', '.dive-ci'), {
      message: '.dive-ci: "rules" must be a mapping',
    });
    assert.throws(() => parseCiConfig('rules:\n  lowestEfficiency: 2\n', '.dive-ci'), {
      message:
        '.dive-ci: lowestEfficiency: invalid value "2": expected a ratio between 0 and 1 (or "disabled")',
    });
  });

  it('takes defaults, then the file, then the command line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strata-ci-'));
    try {
      const none = await loadCiRules({ cwd: dir });
      assert.equal(none.configFile, undefined);
      assert.equal(none.rules.lowestEfficiency.threshold, 0.9);
      await writeFile(join(dir, '.dive-ci'), 'rules:\n  lowestEfficiency: 0.5\n  highestWastedBytes: 1kB\n');
      const file = await loadCiRules({ cwd: dir });
      assert.equal(file.configFile, '.dive-ci');
      assert.equal(file.rules.lowestEfficiency.threshold, 0.5);
      assert.equal(file.rules.highestWastedBytes.threshold, 1000);
      assert.equal(file.rules.highestUserWastedPercent.threshold, 0.1);
      const flags = await loadCiRules({
        cwd: dir,
        overrides: { lowestEfficiency: 'off', highestWastedBytes: '2kB' },
      });
      assert.equal(flags.rules.lowestEfficiency.threshold, undefined);
      assert.equal(flags.rules.highestWastedBytes.threshold, 2000);
      await assert.rejects(
        loadCiRules({ configPath: join(dir, 'nope.yaml') }),
        /CI config .*nope\.yaml: no such file/,
      );
      await assert.rejects(loadCiRules({ overrides: { highestUserWastedPercent: '7' } }), {
        message:
          '--highest-user-wasted-percent: invalid value "7": expected a ratio between 0 and 1 (or "disabled")',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("judges with dive's strict comparisons", () => {
    const image = analysis({
      efficiency: 0.9,
      wastedBytes: 1000,
      userWastedPercent: 0.1,
      userSizeBytes: 10_000,
    });
    const atThresholds = evaluateCi(image, rules({ highestWastedBytes: '1kB' }));
    assert.equal(atThresholds.pass, true, 'meeting a threshold is not crossing it');
    assert.deepEqual(
      atThresholds.results.map((result) => [result.name, result.status]),
      [
        ['highestUserWastedPercent', 'pass'],
        ['highestWastedBytes', 'pass'],
        ['lowestEfficiency', 'pass'],
      ],
    );
    const crossed = evaluateCi(
      analysis({ efficiency: 0.89, wastedBytes: 1001, userWastedPercent: 0.11 }),
      rules({ highestWastedBytes: '1kB' }),
    );
    assert.equal(crossed.pass, false);
    assert.deepEqual(
      crossed.results.map((result) => result.message),
      [
        'too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=0.11 > threshold=0.1)',
        'too many bytes wasted (wasted-bytes=1001 > threshold=1000)',
        'image efficiency is too low (efficiency=0.89 < threshold=0.9)',
      ],
    );
  });

  it('treats an undefined user ratio as dive does: +Inf fails when bytes are wasted, NaN never fails', () => {
    const wasted = evaluateCi(analysis({ wastedBytes: 5, userWastedPercent: null }), rules({}));
    assert.equal(wasted.results[0]?.status, 'fail');
    assert.match(wasted.results[0]?.message ?? '', /%-user-wasted-bytes=\+Inf > threshold=0\.1/);
    const clean = evaluateCi(analysis({ wastedBytes: 0, userWastedPercent: null }), rules({}));
    assert.equal(clean.results[0]?.status, 'pass');
  });

  it("judges strata's numbers when asked", () => {
    const image = analysis(
      { efficiency: 0.5, wastedBytes: 10 },
      { efficiency: 0.95, wastedBytes: 5, userWastedPercent: 0.05, userWastedBytes: 5 },
    );
    assert.equal(evaluateCi(image, rules({})).pass, false);
    const strata = evaluateCi(image, rules({}), 'strata');
    assert.equal(strata.pass, true);
    assert.equal(strata.metrics, 'strata');
  });

  it("prints dive's CI report: analysis, inefficient files, one line per rule, the result", () => {
    const image = analysis(
      {
        efficiency: 10300 / 16400,
        wastedBytes: 11100,
        userSizeBytes: 6300,
        userWastedPercent: 11100 / 6300,
        inefficientFiles: [
          { path: '/bin/tool', count: 2, sizeBytes: 10000 },
          { path: '/etc/conf', count: 3, sizeBytes: 400 },
        ],
      },
      {
        efficiency: 5300 / 15400,
        wastedBytes: 10100,
        userWastedPercent: 10100 / 6300,
        userWastedBytes: 10100,
      },
    );
    assert.equal(
      formatCiReport(image, evaluateCi(image, rules({}))),
      [
        'Image Source: app:1',
        'Analyzing image...',
        '  efficiency: 62.8049 %',
        '  wastedBytes: 11100 bytes (11 kB)',
        '  userWastedPercent: 176.1905 %',
        'strata (bytes the final image does not show):',
        '  efficiency: 34.4156 %',
        '  wastedBytes: 10100 bytes (10 kB)',
        '  userWastedPercent: 160.3175 %',
        'Inefficient Files:',
        'Count  Wasted Space  File Path',
        '    2         10 kB  /bin/tool',
        '    3         400 B  /etc/conf',
        'Results:',
        '  FAIL: highestUserWastedPercent: too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=1.7619047619047619 > threshold=0.1)',
        '  SKIP: highestWastedBytes: rule disabled',
        '  FAIL: lowestEfficiency: image efficiency is too low (efficiency=0.6280487804878049 < threshold=0.9)',
        'Result:FAIL [Total:3] [Passed:0] [Failed:2] [Warn:0] [Skipped:1]',
        '',
      ].join('\n'),
    );
    const empty = analysis({ userWastedPercent: null });
    const report = formatCiReport(empty, evaluateCi(empty, rules({})));
    assert.match(report, /userWastedPercent: NaN %\n/);
    assert.match(report, /File Path\nNone\nResults:\n {2}PASS: highestUserWastedPercent\n/);
    assert.match(report, /Result:PASS \[Total:3\] \[Passed:2\] \[Failed:0\] \[Warn:0\] \[Skipped:1\]\n$/);
  });
});

describe('number formats', () => {
  it("prints floats like Go's %v", () => {
    assert.equal(goFloat(0.9), '0.9');
    assert.equal(goFloat(0.988091457351898), '0.988091457351898');
    assert.equal(goFloat(5e-5), '5e-05');
    assert.equal(goFloat(0.0001), '0.0001');
    assert.equal(goFloat(123456), '123456');
    assert.equal(goFloat(1e6), '1e+06');
    assert.equal(goFloat(Infinity), '+Inf');
    assert.equal(goFloat(NaN), 'NaN');
    assert.equal(goFloat(0), '0');
  });

  it("prints sizes like go-humanize's Bytes", () => {
    assert.equal(humanizeBytes(0), '0 B');
    assert.equal(humanizeBytes(9), '9 B');
    assert.equal(humanizeBytes(400), '400 B');
    assert.equal(humanizeBytes(1500), '1.5 kB');
    assert.equal(humanizeBytes(11100), '11 kB');
    assert.equal(humanizeBytes(3390963), '3.4 MB');
    assert.equal(humanizeBytes(1e9), '1.0 GB');
  });
});
