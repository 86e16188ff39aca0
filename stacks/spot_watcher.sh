#!/bin/bash
# Spot interruption watcher (the Spot launch template installs it as a systemd unit).
#
# EC2 announces a Spot interruption two minutes ahead in the instance metadata, and ECS
# sends no signal to a running Batch job for it (launcher/README.md, "A Spot interruption on
# ECS"). This polls spot/instance-action and, on the notice, sends SIGTERM once to every
# container the ECS agent started for a task, so each job's launcher forwards it to its
# ranks and they checkpoint. Then it exits: draining keeps new jobs off the instance.
#
# Variables (tests point them at a fake metadata server):
#   MNP_IMDS_URL           metadata base URL            (default http://169.254.169.254)
#   MNP_SPOT_POLL_SECONDS  seconds between two checks   (default 5)
set -u

IMDS_URL=${MNP_IMDS_URL:-http://169.254.169.254}
# "We recommend that you check for these interruption notices every 5 seconds"
# (docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html).
POLL_SECONDS=${MNP_SPOT_POLL_SECONDS:-5}
TOKEN_TTL=21600  # IMDSv2's longest token life, in seconds
# The agent labels every container it creates with its task's ARN and container name
# (labelTaskARN, labelContainerName in amazon-ecs-agent agent/engine/docker_task_engine.go);
# an awsvpc task's pause container is one of them and gets no signal.
TASK_LABEL=com.amazonaws.ecs.task-arn
NAME_LABEL=com.amazonaws.ecs.container-name
PAUSE_NAME='~internal~ecs~pause'

log() { echo "mnp-spot-watcher: $*"; }

# IMDSv2 only (the launch template requires tokens): a session token from PUT api/token.
new_token() {
    curl -s -f --max-time 2 -X PUT "$IMDS_URL/latest/api/token" \
        -H "X-aws-ec2-metadata-token-ttl-seconds: $TOKEN_TTL"
}

# Prints the notice's body then its HTTP status on the last line (000: no answer).
instance_action() {
    curl -s --max-time 2 -w '\n%{http_code}' -H "X-aws-ec2-metadata-token: $1" \
        "$IMDS_URL/latest/meta-data/spot/instance-action"
}

stop_jobs() {
    local id name sent=0
    while read -r id name; do
        [ -n "$id" ] || continue
        if [ "$name" = "$PAUSE_NAME" ]; then
            continue
        fi
        if docker kill --signal TERM "$id" >/dev/null; then
            log "SIGTERM sent to container $id ($name)"
            sent=$((sent + 1))
        else
            log "could not signal container $id ($name)"
        fi
    done < <(docker ps --filter "label=$TASK_LABEL" \
                 --format "{{.ID}} {{.Label \"$NAME_LABEL\"}}")
    log "$sent job container(s) signalled"
}

log "polling $IMDS_URL/latest/meta-data/spot/instance-action every ${POLL_SECONDS}s"
token=""
while true; do
    if [ -z "$token" ]; then
        token=$(new_token) || token=""
    fi
    if [ -n "$token" ]; then
        answer=$(instance_action "$token")
        status=${answer##*$'\n'}
        case "$status" in
            200)
                log "interruption notice: ${answer%$'\n'*}"
                stop_jobs
                exit 0 ;;
            404) ;;  # no interruption planned (the item exists only once one is)
            401) token="" ;;  # the token expired: fetch a new one next round
            *) log "instance-action answered $status; trying again" ;;
        esac
    fi
    sleep "$POLL_SECONDS"
done
