# bash completion for jshost (installed as share/bash-completion/completions/jshost;
# or: source contrib/completion/jshost.bash).
#
# The commands and their options are read from jshost's own help, which is
# generated from docs/cli.md: this file never lists them, so it cannot fall
# behind the command.

# The command names, from `jshost help`'s "Commands:" lines.
_jshost_commands()
{
    "$1" help 2>/dev/null | sed -n 's/^  jshost \([a-z][a-z]*\).*/\1/p'
}

# A command's options, from `jshost COMMAND --help` (its usage line and its
# option list).
_jshost_options()
{
    {
        echo --help
        "$1" "$2" --help 2>/dev/null |
            grep -oE '(^|[][ ,|`])--?[a-z][a-z-]*' | sed 's/^[][ ,|`]//'
    } | sort -u
}

_jshost()
{
    local cur prev cword jshost cmd usage
    COMPREPLY=()
    local -a words
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
    fi
    # the jshost being completed (a path, or the one on PATH)
    jshost=${words[0]/#\~/$HOME}
    command -v "$jshost" >/dev/null 2>&1 || jshost=jshost

    if ((cword == 1)); then
        COMPREPLY=($(compgen -W "$(_jshost_commands "$jshost")" -- "$cur"))
        return
    fi
    cmd=${words[1]}
    if [[ $cmd == help ]]; then
        ((cword == 2)) &&
            COMPREPLY=($(compgen -W "$(_jshost_commands "$jshost")" -- "$cur"))
        return
    fi
    case $prev in
    --timeout) return ;; # seconds
    --config | --listen)
        _jshost_files
        return
        ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_jshost_options "$jshost" "$cmd")" -- "$cur"))
        return
    fi
    # positional arguments (CONFIG, SCRIPT, ...) are files, where the usage
    # line has any
    usage=$("$jshost" "$cmd" --help 2>/dev/null | sed -n '1s/^usage: jshost [a-z]* *//p')
    [[ $usage =~ [[:upper:]] ]] && _jshost_files
}

_jshost_files()
{
    if declare -F _filedir >/dev/null; then
        _filedir
    else
        local IFS=$'\n'
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

complete -F _jshost jshost
