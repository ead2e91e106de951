; Huatuo Vision for Windows: a per-user installer, no administrator rights needed.
; Installs the frozen app (installer/freeze.sh on Windows) into %LOCALAPPDATA%\Programs\Huatuo Vision,
; adds a Start-menu shortcut and an entry in "Installed apps"; the uninstaller removes exactly that and
; keeps the user's conversations, settings and models (%LOCALAPPDATA%\HuatuoVision).
;
; Built by installer/windows/build-installer.sh (makensis runs on Linux and Windows):
;   makensis -DAPP_DIR=dist/huatuo -DVERSION=0.1.0 -DOUT_FILE=HuatuoVision-0.1.0-setup.exe
;            [-DICON=huatuo-vision.ico] [-DSIGN_UNINSTALLER=path/to/sign-exe.sh] huatuo.nsi

Unicode true
ManifestDPIAware true
SetCompressor /SOLID lzma

!ifndef APP_DIR
  !error "APP_DIR must name the frozen app folder (the one holding huatuo.exe)"
!endif
!ifndef VERSION
  !error "VERSION must be given, e.g. -DVERSION=0.1.0"
!endif
!ifndef OUT_FILE
  !define OUT_FILE "HuatuoVision-${VERSION}-setup.exe"
!endif
!ifndef VERSION_QUAD
  !define VERSION_QUAD "${VERSION}.0"
!endif

!define APP_NAME "Huatuo Vision"
!define APP_EXE "huatuo.exe"
!define PUBLISHER "Huatuo Vision Desktop"
!define SETTINGS_KEY "Software\HuatuoVision"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\HuatuoVision"

Name "${APP_NAME}"
OutFile "${OUT_FILE}"
; Per user: no elevation prompt, files in the user's own profile, registry under HKCU only.
RequestExecutionLevel user
InstallDir "$LOCALAPPDATA\Programs\${APP_NAME}"
InstallDirRegKey HKCU "${SETTINGS_KEY}" "InstallDir"

; The uninstaller is written at build time so that it can be signed like the installer (NSIS 3.08+).
!ifdef SIGN_UNINSTALLER
  !uninstfinalize '"${SIGN_UNINSTALLER}" "%1"'
!endif

VIProductVersion "${VERSION_QUAD}"
VIAddVersionKey "ProductName" "${APP_NAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP_NAME} installer"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "LegalCopyright" "Apache-2.0"

!include "MUI2.nsh"
!include "FileFunc.nsh"

!ifdef ICON
  !define MUI_ICON "${ICON}"
  !define MUI_UNICON "${ICON}"
!endif
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\${APP_EXE}"
!define MUI_FINISHPAGE_RUN_PARAMETERS "gui"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP_NAME}"

!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Function .onInit
  SetShellVarContext current
FunctionEnd

Function un.onInit
  SetShellVarContext current
FunctionEnd

Section "Huatuo Vision" SecApp
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; An update replaces the bundled runtime whole: no library of an older version may stay behind.
  RMDir /r "$INSTDIR\_internal"
  File /r "${APP_DIR}\*.*"
  WriteUninstaller "$INSTDIR\Uninstall.exe"

  CreateShortCut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${APP_EXE}" "gui" "$INSTDIR\${APP_EXE}" 0

  WriteRegStr HKCU "${SETTINGS_KEY}" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\${APP_EXE}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\Uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\Uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"
SectionEnd

Section "Uninstall"
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"
  ; Only what the installer put there; conversations, settings and models live elsewhere and stay.
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${APP_EXE}"
  Delete "$INSTDIR\Uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  DeleteRegKey HKCU "${SETTINGS_KEY}"
SectionEnd
