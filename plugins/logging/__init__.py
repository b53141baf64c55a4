"""berth's default log drivers: json-file (default), syslog, none.

Modules load on first use.
"""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_log_drivers(register):
    register("json-file", "berth.plugins.logging.jsonfile:JsonFileLogDriver")
    register("syslog", "berth.plugins.logging.syslog:SyslogLogDriver")
    register("none", "berth.plugins.logging.none:NoneLogDriver")
