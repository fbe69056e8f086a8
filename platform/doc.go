// Package platform is hedge's view of the machine it runs on: device facts
// (board, architecture, cores, memory, thermal state) read from a
// configurable root so tests use fixtures, the sd_notify protocol and
// watchdog, and the glue to kardianos/service for installing the unit.
package platform
