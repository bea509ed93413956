# What `cmake --install` puts where (docs/admin.md "Installing"): the two
# binaries, their man pages, the docs and the systemd unit.  With
# -DCMAKE_INSTALL_PREFIX=/usr (scripts/package) the unit goes to Debian's
# /lib/systemd/system; under any other prefix to <prefix>/lib/systemd/system,
# relative, so that `cmake --install --prefix <dir>` (a staged install)
# keeps it under <dir> with everything else instead of writing to the
# configured prefix on this machine.
include(GNUInstallDirs)

if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_unit_dir_default /lib/systemd/system)
else()
  set(_unit_dir_default lib/systemd/system)
endif()
set(XMPPD_SYSTEMD_UNIT_DIR ${_unit_dir_default} CACHE STRING
    "Where the xmppd.service unit is installed (relative: under the prefix)")

configure_file(${CMAKE_SOURCE_DIR}/packaging/xmppd.service.in
               ${CMAKE_BINARY_DIR}/packaging/xmppd.service @ONLY)

install(TARGETS xmppd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS mmp-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/xmppd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/mmp-cli.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
file(GLOB _docs ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_BINARY_DIR}/packaging/xmppd.service
        DESTINATION ${XMPPD_SYSTEMD_UNIT_DIR})
