import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ruleIds } from './testing.js';
import { applyConfigObject, defaultLintConfig } from './config.js';

const fires = (rule: string, source: string, config?: Record<string, unknown>): boolean =>
  ruleIds(source, config ? { config: applyConfigObject(defaultLintConfig(), config) } : {}).includes(rule);

test('package pinning (DL3008, DL3013, DL3016, DL3018, DL3028, DL3033, DL3062)', () => {
  assert.ok(fires('DL3008', 'RUN apt-get install -y curl'));
  assert.ok(!fires('DL3008', 'RUN apt-get install -y curl=7.88.1-10'));
  assert.ok(fires('DL3013', 'RUN pip install flask'));
  assert.ok(!fires('DL3013', 'RUN pip install -r requirements.txt'));
  assert.ok(fires('DL3016', 'RUN npm install express'));
  assert.ok(!fires('DL3016', 'RUN npm install express@4.18.2'));
  assert.ok(fires('DL3018', 'RUN apk add curl'));
  assert.ok(fires('DL3028', 'RUN gem install rails'));
  assert.ok(fires('DL3033', 'RUN yum install -y httpd && yum clean all'));
  assert.ok(!fires('DL3033', 'RUN yum install -y httpd-2.4.6 && yum clean all'));
  assert.ok(fires('DL3062', 'RUN go install example.com/tool@latest'));
});

test('cache cleanup (DL3009, DL3019, DL3032, DL3036, DL3040, DL3042, DL3060)', () => {
  assert.ok(fires('DL3009', 'FROM debian:12\nRUN apt-get update && apt-get install -y x'));
  assert.ok(
    !fires(
      'DL3009',
      'FROM debian:12\nRUN apt-get update && apt-get install -y x && rm -rf /var/lib/apt/lists/*',
    ),
  );
  assert.ok(
    !fires('DL3009', 'FROM debian:12\nRUN --mount=type=cache,target=/var/lib/apt/lists apt-get update'),
  );
  assert.ok(fires('DL3019', 'RUN apk add x=1'));
  assert.ok(fires('DL3032', 'RUN yum install -y x-1'));
  assert.ok(fires('DL3036', 'RUN zypper install -y x=1'));
  assert.ok(fires('DL3040', 'RUN dnf install -y x-1 && microdnf clean all'));
  assert.ok(fires('DL3042', 'RUN pip install x==1'));
  assert.ok(!fires('DL3042', 'ENV PIP_NO_CACHE_DIR=1\nRUN pip install x==1'));
  assert.ok(fires('DL3060', 'FROM node:20\nRUN yarn install'));
});

test('shell habits (DL3001, DL3003, DL3004, DL3047, DL4001, DL4005, DL4006, DL3059)', () => {
  assert.ok(fires('DL3003', 'RUN cd /app && make'));
  assert.ok(fires('DL3004', 'RUN sudo make install'));
  assert.ok(fires('DL3047', 'RUN wget http://x'));
  assert.ok(fires('DL4001', 'FROM a:1\nRUN wget x\nRUN curl y'));
  assert.ok(fires('DL4005', 'RUN ln -sf /bin/bash /bin/sh'));
  assert.ok(fires('DL4006', 'FROM a:1\nRUN curl x | sh'));
  assert.ok(!fires('DL4006', 'FROM a:1\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN curl x | sh'));
  assert.ok(fires('DL3059', 'RUN a\nRUN b'));
  assert.ok(fires('DL3001', 'RUN service nginx start'));
});

test('instructions (DL3000, DL3002, DL3006, DL3007, DL3020, DL3025, DL3045, DL4000)', () => {
  assert.ok(fires('DL3000', 'WORKDIR app'));
  assert.ok(fires('DL3002', 'FROM a:1\nUSER root'));
  assert.ok(fires('DL3006', 'FROM debian'));
  assert.ok(fires('DL3007', 'FROM debian:latest'));
  assert.ok(fires('DL3020', 'ADD file /x/'));
  assert.ok(fires('DL3025', 'CMD run'));
  assert.ok(fires('DL3045', 'FROM a:1\nCOPY a b'));
  assert.ok(fires('DL4000', 'FROM a:1\nMAINTAINER me'));
});

test('config-driven rules (DL3026, DL3049-DL3058)', () => {
  assert.ok(!fires('DL3026', 'FROM evil.io/x:1'));
  assert.ok(fires('DL3026', 'FROM evil.io/x:1', { trustedRegistries: ['docker.io'] }));
  assert.ok(!fires('DL3026', 'FROM ubuntu:22.04', { trustedRegistries: ['docker.io'] }));
  const schema = { 'label-schema': { 'org.opencontainers.image.source': 'url', created: 'rfc3339' } };
  assert.ok(fires('DL3049', 'FROM a:1', schema));
  assert.ok(fires('DL3052', 'FROM a:1\nLABEL org.opencontainers.image.source="nope"', schema));
  assert.ok(fires('DL3053', 'FROM a:1\nLABEL created="yesterday"', schema));
  assert.ok(!fires('DL3053', 'FROM a:1\nLABEL created="2024-01-02T03:04:05Z"', schema));
});
