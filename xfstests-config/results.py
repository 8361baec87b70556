"""Results of the xfstests runs made by xfstests-config/run, for it and for
xfstests-config/report.

A run directory (build/xfstests/<fstyp>/<run-id>/) holds what xfstests' ./check wrote
there (check.log, check.time, <dir>/<test>.out.bad, .full, .dmesg), the output and the
kernel console of each guest boot (boot-N.out, boot-N.console), run.json (what was run
where) and xunit/: the result.xml of each boot as boot-N.xml, plus boot-N.lost.xml
naming the test a boot died in. result.xml is all of them merged, a later boot's result
for a test replacing an earlier one. <dir>/<test>.watchdog says that the guest's watchdog
stopped that test. An archived run (xfstests-config/archive) has no consoles; walls.json
keeps the wall times they gave.
"""

import json
import os
import re
import sys
import xml.etree.ElementTree as ET

XSI = "http://www.w3.org/2001/XMLSchema-instance"
BOOT_XML = re.compile(r"^boot-(\d+)(\.lost)?\.xml$")
BOOT_CONSOLE = re.compile(r"^boot-(\d+)\.console$")
# What check writes to the kernel log as each test starts, after the console timestamp.
RUN_FSTESTS = re.compile(r"^\[\s*(\d+\.\d+)\] run fstests (\S+) at ")
CONSOLE_TIME = re.compile(r"^\[\s*(\d+\.\d+)\]")
WALLS = "walls.json"


class Result:
    """One test's outcome: status is "pass", "fail" or "notrun"."""

    def __init__(self, name, status, seconds, message):
        self.name = name
        self.status = status
        self.seconds = seconds
        self.message = message


def read_xunit(path):
    """(properties, [Result]) of one xunit file written by check (or by write_lost)."""
    root = ET.parse(path).getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    results = []
    for case in root.iter("testcase"):
        status, message = "pass", ""
        failure, skipped = case.find("failure"), case.find("skipped")
        if failure is not None:
            status, message = "fail", failure.get("message", "")
        elif skipped is not None:
            status, message = "notrun", skipped.get("message", "")
        try:
            seconds = int(float(case.get("time") or 0))
        except ValueError:
            seconds = 0
        results.append(Result(case.get("name"), status, seconds, message.strip()))
    return props, results


def boot_files(run_dir):
    """The xunit files of a run directory in boot order."""
    xdir = os.path.join(run_dir, "xunit")
    if not os.path.isdir(xdir):
        return []
    found = []
    for name in os.listdir(xdir):
        m = BOOT_XML.match(name)
        if m:
            found.append(((int(m.group(1)), bool(m.group(2))), os.path.join(xdir, name)))
    return [path for _, path in sorted(found)]


def load_unkept(run_dir):
    """{test: Result} of the result.xml check left in the run directory (the boot running
    now, or the last one of a killed runner, not yet kept in xunit/); {} without one."""
    try:
        return {r.name: r for r in read_xunit(os.path.join(run_dir, "result.xml"))[1]}
    except (OSError, ET.ParseError):
        return {}


def load(run_dir):
    """(properties of the newest boot, {test: Result}) over every boot of a run."""
    props, results = {}, {}
    for path in boot_files(run_dir):
        try:
            boot_props, boot_results = read_xunit(path)
        except ET.ParseError as e:
            print(f"xfstests: {path}: not valid XML ({e}); its results are ignored",
                  file=sys.stderr)
            continue
        props = boot_props or props
        for r in boot_results:
            results[r.name] = r
    for r in results.values():
        try:
            with open(os.path.join(run_dir, r.name + ".watchdog")) as f:
                r.message = f"{f.read().strip()}; {r.message.lstrip('- ')}"
        except OSError:
            pass
    return props, results


def started(console):
    """[(seconds since boot, test)] for each test check started in one boot, from its
    kernel console log, and the time of the console's last line."""
    marks, last = [], 0.0
    try:
        with open(console, errors="replace") as f:
            for line in f:
                m = CONSOLE_TIME.match(line)
                if not m:
                    continue
                last = float(m.group(1))
                m = RUN_FSTESTS.match(line)
                if m:
                    marks.append((last, m.group(2)))
    except OSError:
        pass
    return marks, last


def wall_times(run_dir):
    """{test: seconds} from one test's start to the next one's (or to the end of its
    boot): the test, the checks after it and check's own work between tests. From the
    kernel consoles, else from walls.json (an archived run keeps them there)."""
    walls = {}
    try:
        with open(os.path.join(run_dir, WALLS)) as f:
            walls.update(json.load(f))
    except (OSError, ValueError):
        pass
    consoles = []
    for name in os.listdir(run_dir):
        m = BOOT_CONSOLE.match(name)
        if m:
            consoles.append((int(m.group(1)), os.path.join(run_dir, name)))
    for _, console in sorted(consoles):
        marks, last = started(console)
        for i, (t, test) in enumerate(marks):
            end = marks[i + 1][0] if i + 1 < len(marks) else last
            walls[test] = int(end - t)
    return walls


def write_lost(path, test, message):
    """An xunit file recording TEST as failed with MESSAGE (the guest died in it)."""
    suite = ET.Element("testsuite", name="xfstests", tests="1", failures="1", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="xfstests.global", name=test, time="0")
    ET.SubElement(case, "failure", message=message, type="Lost")
    ET.ElementTree(suite).write(path, encoding="UTF-8", xml_declaration=True)


def merge(run_dir):
    """Write run_dir/result.xml: every boot's test cases, the newest result of each test,
    with the newest boot's properties and recomputed counts."""
    ET.register_namespace("xsi", XSI)
    cases, suite = {}, None
    for path in boot_files(run_dir):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            continue
        if root.find("properties") is not None or suite is None:
            suite = root
        for case in root.iter("testcase"):
            cases[case.get("name")] = case
    if suite is None:
        return
    for case in list(suite.iter("testcase")):
        suite.remove(case)
    ordered = [cases[name] for name in sorted(cases)]
    suite.extend(ordered)
    suite.set("tests", str(len(ordered)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in ordered)))
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in ordered)))
    total = 0.0
    for c in ordered:
        try:
            total += float(c.get("time") or 0)
        except ValueError:
            pass
    suite.set("time", f"{total:g}")
    ET.indent(suite, "\t")
    ET.ElementTree(suite).write(os.path.join(run_dir, "result.xml"), encoding="UTF-8",
                                xml_declaration=True)


def counts(results, excluded=()):
    """Counts for a summary line; ran = passed + failed (not run tests did not run)."""
    by = {"pass": 0, "fail": 0, "notrun": 0}
    for r in results.values():
        by[r.status] += 1
    return {"tests": len(results) + len(excluded), "ran": by["pass"] + by["fail"],
            "passed": by["pass"], "failed": by["fail"], "notrun": by["notrun"],
            "excluded": len(excluded)}


def short_message(message):
    """A failure or not-run message without xfstests' paths inside the guest."""
    message = re.sub(r"\s*\(see [^)]*\)", "", message)
    message = re.sub(r"\s*\(Run '[^']*' to see[^)]*\)", "", message)
    return message.lstrip("- ").strip()


def load_info(run_dir):
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_info(run_dir, info):
    tmp = os.path.join(run_dir, "run.json.tmp")
    with open(tmp, "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(run_dir, "run.json"))
