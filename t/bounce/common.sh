# t/bounce/common.sh - shared set-up of the bounce loop's tests (sourced
# after t/lib.sh, and after rg_tmpdir and rg_start_redis).
#
#   rg_bounce_conf OWNER          a signing key $RG_TMP/etc/bounce-k1.key
#                                 owned by OWNER (mode 600: the user that
#                                 runs "relayguard bounce" reads it) and
#                                 RG_CONF with a bounce block: "key = k1 ..."
#                                 plus the lines on stdin
#   rg_bounce_accounts            load the accounts of stdin (rg_cli load)
#   rg_bounce_refusing_sink ADDR  an smtp-sink on BAD_PORT that refuses every
#                                 recipient with 550 5.1.1 (naming ADDR)
#   rg_bounce_pipe_transport      the rgbounce pipe of conf.examples/postfix-master.cf
#                                 into the private Postfix's master.cf (PF_DIR)
#   rg_bounce_wait_supp ACCT ADDR [SECONDS]
#                                 wait until ADDR is on ACCT's suppression list
#   rg_bounce_dsn RCPT TO         a minimal RFC 3464 report: RCPT failed 5.1.1
#   rg_bounce_start_lmtp SPEC [ARGS..]
#                                 "relayguard bounce --lmtp SPEC" on RG_CONF:
#                                 LMTP_PID, LMTP_LOG; waits until it listens
#   rg_bounce_sanitizer_clean FILE..
#                                 no AddressSanitizer / UBSan report in FILE..

rg_bounce_conf() {
    local owner=$1
    mkdir -p -m 755 "$RG_TMP/etc"
    BOUNCE_KEY="$RG_TMP/etc/bounce-k1.key"
    openssl rand -hex 32 >"$BOUNCE_KEY"
    chown "$owner" "$BOUNCE_KEY"
    chmod 600 "$BOUNCE_KEY"
    RG_CONF="$RG_TMP/etc/relayguard.conf"
    {
        echo "bounce {"
        echo "    key = k1 $BOUNCE_KEY"
        cat
        echo "}"
    } | rg_write_conf "$RG_CONF"
    chmod 644 "$RG_CONF"
}

rg_bounce_accounts() {
    cat >"$RG_TMP/accounts.conf"
    rg_cli load "$RG_TMP/accounts.conf" >/dev/null 2>&1
}

rg_bounce_refusing_sink() {
    BAD_PORT=$(rg_free_port)
    smtp-sink -u nobody -f RCPT -B "550 5.1.1 <$1>: Recipient address rejected: User unknown" \
        "127.0.0.1:$BAD_PORT" 100 >"$RG_TMP/bad-sink.log" 2>&1 &
    rg_on_exit "rg_stop_pid $!"
    rg_wait_port "$BAD_PORT" 10 || { echo "Bail out! smtp-sink did not start"; exit 1; }
}

rg_bounce_pipe_transport() {
    cat >>"$PF_DIR/etc/master.cf" <<EOF
rgbounce  unix  -       n       n       -       -       pipe
  flags=q user=nobody argv=$RG_BIN_CLI -c $RG_CONF bounce --rcpt \${original_recipient}
EOF
}

rg_bounce_wait_supp() {
    local i max=$(( ${3:-30} * 10 ))
    for ((i = 0; i < max; i++)); do
        [ -n "$(rg_redis HGET "rg:s:a:$1" "$2")" ] && return 0
        sleep 0.1
    done
    return 1
}

rg_bounce_dsn() {
    printf 'From: MAILER-DAEMON@mx.example.net\nTo: %s\nSubject: Delivery Status Notification (Failure)\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n--b\nContent-Type: text/plain\n\nfailed\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; %s\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n\n--b--\n' "$2" "$1"
}

rg_bounce_start_lmtp() {
    local spec=$1 i; shift
    LMTP_LOG="$RG_TMP/lmtp.log"
    "$RG_BIN_CLI" -c "$RG_CONF" bounce --lmtp "$spec" "$@" 2>>"$LMTP_LOG" &
    LMTP_PID=$!
    rg_on_exit "rg_stop_pid $LMTP_PID"
    for ((i = 0; i < 100; i++)); do
        grep -q "LMTP on $spec" "$LMTP_LOG" 2>/dev/null && return 0
        kill -0 "$LMTP_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "Bail out! relayguard bounce --lmtp $spec did not start"
    sed 's/^/# /' "$LMTP_LOG"
    exit 1
}

rg_bounce_sanitizer_clean() {
    ! cat "$@" 2>/dev/null | grep -Eq 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
}
