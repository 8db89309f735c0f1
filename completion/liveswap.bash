# bash completion for liveswap(8): its flags, files and directories where a flag takes a
# path, and the names of running instances for -i (asked from `liveswapctl list`, when
# liveswapctl is installed). Needs nothing from the bash-completion package.

_liveswap() {
        local cur=${COMP_WORDS[COMP_CWORD]}
        local prev=
        ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
        local options='-i --instance -c --config -l --listen --socket-mode -f --workers --forks
                -s --start --foreground -p --port -a --address --pre-upgrade --start-timeout
                -H --head -z --adopt --no-adopt --watchdog --memory-max -u --upgrade -k --kill
                -d --die -m --message -v --version -h --help'

        case $prev in
        -i | --instance)
                if command -v liveswapctl >/dev/null; then
                        mapfile -t COMPREPLY < <(compgen -W "$(timeout 5 liveswapctl list 2>/dev/null |
                                awk 'NR == 1 { next } /^$/ { exit } { print $1 }')" -- "$cur")
                fi
                return 0
                ;;
        -c | --config | -s | --start | --pre-upgrade | -H | --head | -u | --upgrade)
                # -u takes its target as the next word when it does not start with '-'.
                if [[ $cur != -* ]]; then
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                        return 0
                fi
                ;;
        -l | --listen | --socket-mode | -f | --workers | --forks | -p | --port | -a | --address | \
                --start-timeout | --watchdog | --memory-max | -m | --message)
                return 0
                ;;
        esac
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
        return 0
}

complete -F _liveswap liveswap
