# bash completion for liveswapctl(1): commands, options, the names of running instances
# for -i (asked from `liveswapctl list`), and files and directories for `upgrade`.
# Needs nothing from the bash-completion package, which loads it on first use.

# The running instances, on the bus the command line names (--system, --user; none: every
# bus and private socket). Nothing for -H: listing a remote host could ask for a password.
_liveswapctl_instances() {
        local word
        local -a bus=()
        for word in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
                case $word in
                --system | --user) bus+=("$word") ;;
                -H | --host | --host=* | -H?*) return 0 ;;
                esac
        done
        # The text listing: a header, one line per instance (its name first), an empty
        # line, a count. A supervisor that does not answer must not hang the shell.
        timeout 5 "${COMP_WORDS[0]}" "${bus[@]}" list 2>/dev/null |
                awk 'NR == 1 { next } /^$/ { exit } { print $1 }'
}

_liveswapctl() {
        local cur=${COMP_WORDS[COMP_CWORD]}
        local prev=
        ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
        local commands='status upgrade reload rollback cancel restart stop message scale list reexec logs'
        local options='-i --instance --system --user -H --host --json --no-wait -h --help --version'
        local logs_options='-f --follow --generation'

        case $prev in
        -i | --instance)
                mapfile -t COMPREPLY < <(compgen -W "$(_liveswapctl_instances)" -- "$cur")
                return 0
                ;;
        -H | --host)
                # bash-completion's list of known hosts, when it is loaded.
                if declare -F _known_hosts_real >/dev/null; then
                        _known_hosts_real -a -- "$cur"
                fi
                return 0
                ;;
        --generation)
                return 0
                ;;
        esac

        # The command is the first word that is neither an option nor an option's value
        # (getopt lets options follow it, too).
        local command= n_args=0 i word
        for ((i = 1; i < COMP_CWORD; i++)); do
                word=${COMP_WORDS[i]}
                case $word in
                -i | --instance | -H | --host | --generation)
                        ((i++))
                        ;;
                -*) ;;
                *)
                        if [[ -z $command ]]; then
                                command=$word
                        else
                                ((n_args++))
                        fi
                        ;;
                esac
        done

        if [[ $cur == -* ]]; then
                [[ $command == logs ]] && options="$options $logs_options"
                mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
                return 0
        fi
        if [[ -z $command ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
                return 0
        fi
        if [[ $command == upgrade ]] && ((n_args == 0)); then
                # A target is an executable file or a release directory.
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                return 0
        fi
        return 0
}

complete -F _liveswapctl liveswapctl
