#!/usr/bin/env bash
# Local RabbitMQ Web-STOMP peer for scripts/bench_fanout.py (SPEC §9). Loopback only.
#
#   scripts/rabbitmq_webstomp.sh [enable]   enable rabbitmq_web_stomp, wait for ws://127.0.0.1:15674/ws
#   scripts/rabbitmq_webstomp.sh status     plugin, beam.smp pid, open-files limit and use, queues
#   scripts/rabbitmq_webstomp.sh repair     undo what running out of file descriptors breaks
#   scripts/rabbitmq_webstomp.sh raise-nofile N   raise the running broker's open-files limit
#
# Why "repair": RabbitMQ 3.10 with the default 1,024 open files budgets ~832 sockets, but keeps
# accepting Web-STOMP sockets past that (they wait for a handle and time out). At EMFILE its
# vm_memory_monitor crashes (it cannot open /proc/meminfo), its supervisor gives up, and from then
# on every new subscription queue crashes ("STOMP died"); the dead queues stay bound to their
# topics, so SEND receipts never arrive. bench_fanout.py stays below the limit (its fd guard);
# "repair" restarts the two monitors and deletes queue records whose process is dead.
#
# "raise-nofile" changes the running broker only (prlimit; lost on restart). It is opt-in: SPEC §9
# says to compare at the sizes the default broker takes, or to say what stopped it.
set -euo pipefail

WS_PORT=15674

beam_pid() {
    local pid
    for pid in $(pgrep -f beam.smp || true); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q rabbit; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

ws_ready() {
    python3 - "$WS_PORT" <<'EOF'
import base64, os, socket, sys
key = base64.b64encode(os.urandom(16)).decode()
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n").encode())
        sys.exit(0 if s.recv(64).startswith(b"HTTP/1.1 101") else 1)
except OSError:
    sys.exit(1)
EOF
}

cmd_enable() {
    timeout 180 rabbitmq-plugins enable rabbitmq_web_stomp
    for _ in $(seq 1 120); do
        if ws_ready; then
            echo "ws://127.0.0.1:$WS_PORT/ws is ready"
            return 0
        fi
        sleep 0.5
    done
    echo "ws://127.0.0.1:$WS_PORT/ws did not answer within 60 s" >&2
    return 1
}

cmd_status() {
    local pid
    pid=$(beam_pid) || { echo "no RabbitMQ beam.smp process" >&2; return 1; }
    echo "beam.smp pid: $pid"
    grep "Max open files" "/proc/$pid/limits"
    echo "open fds: $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)"
    grep -h "Limiting to approx" /var/log/rabbitmq/rabbit@*.log 2>/dev/null | tail -1 || true
    if ws_ready; then echo "web-stomp: ready on $WS_PORT"; else echo "web-stomp: not answering"; fi
    timeout 60 rabbitmqctl eval '
        Qs = rabbit_amqqueue:list(<<"/">>),
        Dead = [Q || Q <- Qs, not erlang:is_process_alive(amqqueue:get_pid(Q))],
        io:format("memory monitors: vm=~w rabbit=~w; queues: ~w (dead: ~w)~n",
                  [whereis(vm_memory_monitor), whereis(rabbit_memory_monitor),
                   length(Qs), length(Dead)]).' | head -1
}

cmd_repair() {
    timeout 120 rabbitmqctl eval '
        Restart = fun(Id) ->
            case supervisor:restart_child(rabbit_sup, Id) of
                {ok, _} -> restarted;
                {error, running} -> running;
                Other -> Other
            end
        end,
        Monitors = [{Id, Restart(Id)} || Id <- [vm_memory_monitor_sup, rabbit_memory_monitor_sup]],
        Dead = [Q || Q <- rabbit_amqqueue:list(<<"/">>),
                     not erlang:is_process_alive(amqqueue:get_pid(Q))],
        [rabbit_amqqueue:internal_delete(amqqueue:get_name(Q), <<"bench-repair">>) || Q <- Dead],
        io:format("monitors: ~w; dead queues deleted: ~w~n", [Monitors, length(Dead)]).' | head -1
}

cmd_raise_nofile() {
    local n=${1:?usage: raise-nofile N} pid
    pid=$(beam_pid) || { echo "no RabbitMQ beam.smp process" >&2; return 1; }
    prlimit --pid "$pid" --nofile="$n:"  # soft limit only; must not exceed the hard limit
    grep "Max open files" "/proc/$pid/limits"
    echo "note: RabbitMQ's own socket budget (log: 'Limiting to approx ...') is computed at boot;" \
        "Web-STOMP does not enforce it, but check 'status' before large runs"
}

case "${1:-enable}" in
    enable) cmd_enable ;;
    status) cmd_status ;;
    repair) cmd_repair ;;
    raise-nofile) cmd_raise_nofile "${2:-}" ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
