"""Java (javac + java): HumanEval-X (``Main.java``, class ``Main``) and MultiPL-E (``Problem.java``,
asserts on with ``-ea``, org.javatuples on the class path as MultiPL-E's harness has it).

The JVM reserves far more address space than it uses, so its memory limit is RLIMIT_DATA
(``memory="data"``); ``-XX:-UsePerfData`` keeps it from writing ``/tmp/hsperfdata_*`` outside the
program's directory, and ``java.io.tmpdir`` points inside it.
"""
from __future__ import annotations

from domainspec.eval.languages.base import Build, Format, Language, Tool

JAVATUPLES = "/usr/share/java/javatuples.jar"
LANGUAGE = Language("java", memory="data", tools={
    "javac": Tool("javac", "apt-get install default-jdk-headless"),
    "java": Tool("java", "apt-get install default-jre-headless")})

# a small initial heap: the default (1/64 of RAM) is committed at start and counts against RLIMIT_DATA
JVM = ("-Xms32m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Djava.io.tmpdir={dir}")
JAVAC = ("$javac", *(f"-J{o}" for o in JVM), "-encoding", "UTF-8", "-nowarn")


def _build(cls: str, classpath: str, needs=()) -> Build:
    return Build(f"{cls}.java", compile=(*JAVAC, "-cp", classpath, f"{cls}.java"),
                 run=("$java", *JVM, "-ea", "-cp", classpath, cls), needs=needs)


HUMANEVAL_X = Format("java", _build("Main", "."), stops=("\npublic class Main", "\nclass ", "\n/*", "\n//"),
                     assemble=lambda row, completion: row["prompt"] + completion + "\n" + row["test"])
MULTIPL_E = Format("java", _build("Problem", f".:{JAVATUPLES}",
                                  needs=((JAVATUPLES, "apt-get install libjavatuples-java"),)),
                   stops=("\n    }\n",))
