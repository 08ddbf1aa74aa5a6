#!/bin/bash
# bench/run-script.sh - what one decision costs Redis, in instructions, by op.
#
# Runs a private redis-server under valgrind (callgrind) and feeds it the
# decision script (policy/decide.lua, read from the source tree) with
# synthetic batches of decisions laid out exactly as the engine builds them
# (engine.c run_script, the header of decide.lua) and encoded as the store
# sends them (store_redis.c encode_decision: a count and one blob of
# NUL-terminated arguments): one FCALL of its function form per batch (or
# one EVALSHA with FORM=script; a script without decide.lua's last line
# "return run(ARGV)", like bench/floor/*.lua, always runs with EVALSHA)
# of $BATCH decisions, the batch size relayguard-policyd reaches at 50
# connections.  Each op is measured on its own (callgrind counters zeroed
# before, dumped after) over $N decisions, in the order a message sees them:
#
#   rcpt     first recipient of a new message: suspension, global and account
#            suppression, two limits (rate 1000000/1h, quota 100000000/1d, per
#            message) checked and reserved, event (the benchmark's request)
#   rcpt2    a second recipient of the same message (limits already held)
#   eom      end of message with a queue id: release the holds, charge both
#            limits, charged marker, event, stats
#   mail     MAIL stage (op check): suspension and limits checked, nothing held
#   refused  RCPT to a suppressed recipient: refused, event, stats
#   log      a static refusal (op log): event and stats only
#
# Instruction counts do not depend on the other load of the machine, so this
# is the number to compare script changes by on a shared machine (timings
# are not).  Also prints the Redis commands per decision (INFO commandstats,
# the script's own commands; the EVALSHA itself not counted).
#
# Usage: bench/run-script.sh [SCRIPT]     (default: policy/decide.lua)
# Knobs: N=3200 (decisions per op) BATCH=16 ACCOUNTS=100 SUPPRESSED=1000
#        FORM=function|script
#        PORT=7791 KEEP=0 OPS="rcpt rcpt2 eom mail refused log"
# Needs valgrind, redis-server, python3.  Stops what it starts, by PID.
{
set -euo pipefail
. "$(dirname "$0")/common.sh"

SCRIPT=${1:-$TOP_SRC/policy/decide.lua}
N=${N:-3200}
BATCH=${BATCH:-16}
ACCOUNTS=${ACCOUNTS:-100}
SUPPRESSED=${SUPPRESSED:-1000}
PORT=${PORT:-7791}
KEEP=${KEEP:-0}
OPS=${OPS:-"rcpt rcpt2 eom mail refused log"}

[ -r "$SCRIPT" ] || die "cannot read $SCRIPT"
for t in valgrind callgrind_control redis-server python3; do
    command -v "$t" >/dev/null || die "$t is missing (apt-get install valgrind redis-server python3)"
done

make_workdir
cleanup_on_exit

log "redis-server under callgrind on port $PORT ($WORK)"
# hz 1: the server's timer work stays out of the counts; nothing persists.
start_redis_callgrind "$WORK" "$PORT" 300
RPID=$CG_PID
redis-cli -p "$PORT" PING 2>/dev/null | grep -q PONG || die "redis-server did not start"

# callgrind_control talks to the valgrind process by PID.
zero() { callgrind_control -z "$RPID" >/dev/null 2>&1; }
dump() {
    mkdir -p "$WORK/dumps"; mv "$WORK"/cg.*.out.[0-9]* "$WORK/dumps/" 2>/dev/null || true
    callgrind_control -d "$RPID" >/dev/null 2>&1
    local f
    f=$(ls -t "$WORK"/cg.*.out.[0-9]* 2>/dev/null | head -n 1)
    [ -n "$f" ] || die "no callgrind dump"
    awk '/^(totals|summary):/ { print $2; exit }' "$f"
}

# The driver: one python3 process per op, keeping the messages' state in a
# file between ops (rcpt2 and eom need the messages rcpt reserved).
cat >"$WORK/drive.py" <<'EOF'
import json, os, random, socket, sys, time

port, op, n, batch, naccts, nsupp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
state_file, script_file = sys.argv[7], sys.argv[8]

def enc(args):
    out = [b'*%d\r\n' % len(args)]
    for x in args:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(x), x))
    return b''.join(out)

class R:
    def __init__(s):
        s.s = socket.create_connection(('127.0.0.1', int(port)))
        s.f = s.s.makefile('rb')
    def read(s):
        l = s.f.readline()
        t = l[:1]
        if t in b'+:':
            return l[1:-2]
        if t == b'-':
            raise SystemExit('Redis error: ' + l[1:-2].decode())
        if t == b'$':
            k = int(l[1:-2])
            return None if k < 0 else s.f.read(k + 2)[:-2]
        if t == b'*':
            return [s.read() for _ in range(max(int(l[1:-2]), 0))]
    def cmd(s, *a):
        s.s.sendall(enc(a))
        return s.read()

r = R()
st = json.load(open(state_file)) if os.path.exists(state_file) else {'seq': 0, 'msgs': []}
if op == 'setup':
    # accounts, a generation, and a global suppression list of nsupp entries
    r.cmd('INCR', 'rg:acct:gen')
    for a in range(naccts):
        r.cmd('HSET', 'rg:acct:acct%d' % a, 'logins', 'acct%d@relay.test' % a, 'domains', 'acct%d.test' % a)
        r.cmd('SADD', 'rg:accts', 'acct%d' % a)
    for i in range(0, nsupp, 500):
        args = ['HSET', 'rg:s:g']
        for j in range(i, min(i + 500, nsupp)):
            args += ['suppressed%d@example.net' % j, 'hard-bounce|1762000000|0|bench']
        r.cmd(*args)
    json.dump(st, open(state_file, 'w'))
    sys.exit(0)

text = open(script_file).read()
lines = text.rstrip('\n').split('\n')
if os.environ.get('FORM', 'function') == 'function' and lines[-1] == 'return run(ARGV)':
    # the library form the stores run with FCALL (policy/local.mk), loaded
    # once per Redis: a reload would count its compilation and first call
    if not r.cmd('FUNCTION', 'LIST', 'LIBRARYNAME', 'rgbench'):
        r.cmd('FUNCTION', 'LOAD', 'REPLACE',
              '#!lua name=rgbench\nlocal run_batch\nlocal function init()\n' +
              '\n'.join(lines[:-1]) + '\nrun_batch = run\nend\n' +
              "redis.register_function('rgbench_decide', function(keys, args)\n" +
              '  if not run_batch then init() end\n  return run_batch(args)\nend)\n')
    head = ['FCALL', 'rgbench_decide']
else:
    head = ['EVALSHA', r.cmd('SCRIPT', 'LOAD', text).decode()]
gen = r.cmd('GET', 'rg:acct:gen').decode()
now = int(time.time() * 1000)
t = time.gmtime(now / 1000)
hour = time.strftime('%Y%m%d%H', t)
day = time.strftime('%Y%m%d', t)
day_end = (now // 86400000 + 1) * 86400000

def limits(acct):
    # engine.c: bucket, then "KIND UNIT COUNT T_us TAU_us WINDOW WINDOW_END_ms HARD"
    T = 3600 * 1000000 // 1000000
    return [2, 'a:%s:rate-1000000-1h-msg' % acct, 'r m 1000000 %d %d - 0 0' % (T, 1000000 * T),
               'a:%s:quota-100000000-1d-msg' % acct, 'q m 100000000 0 0 %s %d 0' % (day, day_end)]

def decision(op_, m, rcpt, nrcpt, stage, extra=None):
    acct = m['acct']
    a = [op_, now, 'node1', 'node1:%s' % m['id'] if op_ in ('rcpt', 'eom') else '',
         m['qid'] if op_ == 'eom' else '', acct, acct + '@relay.test', m['client'], '',
         'a@%s.test' % acct, rcpt, nrcpt, 0 if op_ != 'eom' else 2048, stage,
         100000, 600000, hour, '', gen, 0]
    a += [0] if op_ == 'log' else limits(acct)
    if op_ == 'log':
        a += ['reject', 553, 'sender_domain', 'sender domain x.test is not allowed for account ' + acct]
    return [len(a)] + a

def new_msg():
    st['seq'] += 1
    s = st['seq']
    return {'id': 'm%d' % s, 'qid': 'Q%X' % s, 'acct': 'acct%d' % random.randrange(naccts),
            'client': '192.0.2.%d' % random.randrange(1, 250)}

decs = []
if op == 'rcpt':
    st['msgs'] = []
    for i in range(n):
        m = new_msg()
        st['msgs'].append(m)
        decs.append(decision('rcpt', m, 'r%d@dest.test' % random.randrange(1000000), 0, 'RCPT'))
elif op == 'rcpt2':
    for m in st['msgs'][:n]:
        decs.append(decision('rcpt', m, 'r%d@dest.test' % random.randrange(1000000), 0, 'RCPT'))
elif op == 'eom':
    for m in st['msgs'][:n]:
        decs.append(decision('eom', m, '', 2, 'END-OF-MESSAGE'))
elif op == 'mail':
    for i in range(n):
        decs.append(decision('check', new_msg(), '', 0, 'MAIL'))
elif op == 'refused':
    for i in range(n):
        decs.append(decision('rcpt', new_msg(), 'suppressed%d@example.net' % random.randrange(nsupp), 0, 'RCPT'))
elif op == 'log':
    for i in range(n):
        decs.append(decision('log', new_msg(), 'r@dest.test', 0, 'MAIL'))
else:
    raise SystemExit('unknown op ' + op)

cmds = []
for i in range(0, len(decs), batch):
    part = decs[i:i + batch]
    # decide.lua's ARGV: n, then one blob: per decision its argument count
    # and its arguments, each NUL-terminated (store_redis.c encode_batch)
    blob = b''.join(str(x).encode() + b'\0' for d in part for x in d)
    cmds.append(enc(head + ['0', len(part), blob]))
r.cmd('CONFIG', 'RESETSTAT')
outcomes = {}
for i in range(0, len(cmds), 20):
    chunk = cmds[i:i + 20]
    r.s.sendall(b''.join(chunk))
    for _ in chunk:
        for d in r.read():
            k = d[1].decode()
            outcomes[k] = outcomes.get(k, 0) + 1
calls = 0
for line in r.cmd('INFO', 'commandstats').decode().split('\r\n'):
    if line.startswith('cmdstat_') and not line.startswith(('cmdstat_evalsha', 'cmdstat_fcall', 'cmdstat_function', 'cmdstat_config', 'cmdstat_info')):
        calls += int(line.split('calls=')[1].split(',')[0])
json.dump(st, open(state_file, 'w'))
print('%d %.1f %s' % (len(decs), calls / len(decs), ','.join('%s:%d' % kv for kv in sorted(outcomes.items()))))
EOF

py() { python3 "$WORK/drive.py" "$PORT" "$1" "$N" "$BATCH" "$ACCOUNTS" "$SUPPRESSED" "$WORK/state.json" "$SCRIPT"; }
py setup
# warm-up: the script compiled, hashes and the stream allocated
N=$((BATCH * 20)) py rcpt >/dev/null
N=$((BATCH * 20)) py eom >/dev/null

echo "## Redis instructions per decision (callgrind)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); script: ${SCRIPT#$TOP_SRC/} (form: ${FORM:-function}); $N decisions per op; batches of $BATCH;"
echo "  $ACCOUNTS accounts, $SUPPRESSED addresses in the global suppression list; redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
echo
echo "| op | decisions | instructions per decision | Redis commands per decision | outcomes |"
echo "| --- | ---: | ---: | ---: | --- |"
for op in $OPS; do
    zero
    out=$(py "$op")
    tot=$(dump)
    set -- $out
    printf '| %s | %d | %d | %s | %s |\n' "$op" "$1" $((tot / $1)) "$2" "$3"
done
}
